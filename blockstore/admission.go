package blockstore

import (
	"crypto/subtle"
	"fmt"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/record"
)

// admitted is a block that passed the checks a Put makes before it
// touches the store's state.
type admitted struct {
	// key is where the block is kept and asked for: its ID, or a record's
	// slot (docs/PROTOCOL.md section 15.4). A record at a held slot
	// replaces the held version only as record.Supersedes says.
	key     block.ID
	id      block.ID // the block's ID, block.Sum(data)
	header  block.Header
	data    []byte
	expires time.Time
	// rec is a record's decoding: its layout only until verify, which a
	// Put runs unless the store holds these very bytes at key already (a
	// replay costs no signature check).
	rec      *record.Record
	verified bool
}

// admit validates b as docs/PROTOCOL.md section 4 demands (layout, and the
// signature of a pubkey block), computes its ID, its key and its expiry at
// now. A record's signatures are left to verify.
func admit(b []byte, lifetime time.Duration, now time.Time) (admitted, error) {
	a, err := check(b, lifetime, now)
	if err == nil {
		a.setID(block.Sum(b))
	}
	return a, err
}

// admitMany is admit for several blocks, hashed side by side
// (block.SumMany, 8 lanes with AVX-512): the admitted block and error of
// each.
func admitMany(bs [][]byte, lifetime time.Duration, now time.Time) ([]admitted, []error) {
	out, errs := make([]admitted, len(bs)), make([]error, len(bs))
	var valid [][]byte
	var at []int
	for i, b := range bs {
		if out[i], errs[i] = check(b, lifetime, now); errs[i] == nil {
			valid, at = append(valid, b), append(at, i)
		}
	}
	ids := make([]block.ID, len(valid))
	block.SumMany(valid, ids)
	for j, i := range at {
		out[i].setID(ids[j])
	}
	return out, errs
}

// check is admit but for the block's ID: a record's key is its slot.
func check(b []byte, lifetime time.Duration, now time.Time) (admitted, error) {
	if lifetime < time.Second {
		// Section 5: a lifetime is whole seconds, at least 1; one shorter
		// would be stored already expired.
		return admitted{}, fmt.Errorf("%w: lifetime %v is under one second", ErrInvalid, lifetime)
	}
	// Section 5 lets a node keep a block for less than asked.
	lifetime = min(lifetime, block.MaxLifetime)
	if h, _, err := block.ParseHeader(b); err == nil && h.Type == block.TypeRecord {
		rec, err := record.Decode(b)
		if err != nil {
			return admitted{}, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return admitted{key: rec.Slot(), header: h, data: b, expires: now.Add(lifetime), rec: rec}, nil
	}
	h, err := identity.Check(b)
	if err != nil {
		return admitted{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return admitted{header: h, data: b, expires: now.Add(lifetime), verified: true}, nil
}

// setID sets the block's ID, and its key unless it is a record's slot.
func (a *admitted) setID(id block.ID) {
	a.id = id
	if a.rec == nil {
		a.key = id
	}
}

// verify checks a record's signatures and chain (record.Parse); other
// blocks were checked in full by admit.
func (a *admitted) verify() error {
	if a.verified {
		return nil
	}
	rec, err := record.Parse(a.data)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	a.rec, a.verified = rec, true
	return nil
}

// supersede applies the rule of section 15.4 to a verified record a and
// the bytes held at its slot, which the store verified when it took them
// (so decoding them is enough). nil: a replaces them.
func supersede(held []byte, a admitted) error {
	if a.rec == nil {
		// A block's ID that is some record's slot: a hash collision.
		return fmt.Errorf("%w: another block is kept at %v", ErrRefused, a.key.Short())
	}
	h, err := record.Decode(held)
	if err != nil {
		return fmt.Errorf("%w: the record held at %v: %w", ErrCorrupt, a.key.Short(), err)
	}
	if err := record.Supersedes(h, a.rec); err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	return nil
}

// authorizeDeletion checks preimage against the deletion hash a held
// block carries (hasDeletion false: none).
func authorizeDeletion(id block.ID, typ block.Type, hasDeletion bool, hash, preimage [32]byte) error {
	if !hasDeletion {
		return fmt.Errorf("%w: %v block %v carries no deletion hash", ErrForbidden, typ, id.Short())
	}
	want := block.DeletionHash(preimage)
	if subtle.ConstantTimeCompare(want[:], hash[:]) != 1 {
		return fmt.Errorf("%w: for block %v", ErrForbidden, id.Short())
	}
	return nil
}

// extension is the expiry a re-store of a block held until held, asking
// for until want, leaves at now, and whether it moves. It moves only by at
// least min(MinExtension, the time left), so replaying a STORE again and
// again rewrites nothing (docs/PROTOCOL.md section 5).
func extension(held, want, now time.Time) (time.Time, bool) {
	step := max(min(MinExtension, held.Sub(now)), 1)
	if want.Sub(held) < step {
		return held, false
	}
	return want, true
}

// listBounds checks List's arguments and returns the range of IDs to
// scan, empty (hi < lo) when after is at or past its end.
func listBounds(target block.ID, bits int, after *block.ID, limit int) (lo, hi block.ID, err error) {
	if bits < 0 || bits > 8*block.IDSize {
		return lo, hi, fmt.Errorf("blockstore: list prefix of %d bits, want 0 to %d", bits, 8*block.IDSize)
	}
	if limit <= 0 {
		return lo, hi, fmt.Errorf("blockstore: list limit %d, want at least 1", limit)
	}
	lo, hi = prefixRange(target, bits)
	if after != nil && !block.Less(*after, lo) {
		next, ok := successor(*after)
		if !ok || block.Less(hi, next) {
			return block.ID{1}, block.ID{}, nil
		}
		lo = next
	}
	return lo, hi, nil
}

// prefixRange returns the first and last ID that share bits leading bits
// with target: the contiguous ID range List scans.
func prefixRange(target block.ID, bits int) (lo, hi block.ID) {
	lo, hi = target, target
	for i := range lo {
		switch {
		case (i+1)*8 <= bits:
			// inside the prefix: keep the byte
		case i*8 >= bits:
			lo[i], hi[i] = 0, 0xff
		default:
			keep := byte(0xff) << (8 - (bits - i*8))
			lo[i] &= keep
			hi[i] |= ^keep
		}
	}
	return lo, hi
}

// successor returns the next ID in ascending order and false when id is the
// last one.
func successor(id block.ID) (block.ID, bool) {
	for i := len(id) - 1; i >= 0; i-- {
		id[i]++
		if id[i] != 0 {
			return id, true
		}
	}
	return id, false
}

// notExpired reports whether a block or tombstone that lasts until expires
// is still alive at now.
func notExpired(expires, now time.Time) bool { return now.Before(expires) }
