package kademlia

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/blockstore"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/record"
	"github.com/flowmail/flowmail/transport"
)

// Records (docs/PROTOCOL.md section 15) live at slots: STORE carries them
// like blocks, each node keeps the newest it was given, and a reader asks
// the K closest to a slot and folds what they answer, so one node cannot
// hide a newer record by answering first or alone.

// ErrNotARecord: PutRecord or RefreshRecord was handed bytes that are not
// a valid record.
var ErrNotARecord = errors.New("kademlia: not a valid record")

// RecordAnswer is one version of a record a node answered for a slot.
type RecordAnswer struct {
	From     block.ID // the answering node (this node's ID for its own store)
	Record   *record.Record
	Lifetime time.Duration // what the node said is left
}

// RecordAnswers is what the nodes closest to a slot answered.
type RecordAnswers struct {
	Valid []RecordAnswer
	// Refused says, for each node that answered bytes that are not a
	// valid record of the slot, why: an error wrapping ErrBadReply and
	// the record package's reason (record.ErrWrongKey, ErrTooLarge,
	// ErrRevoked for an event after a revocation...).
	Refused []error
}

func (a RecordAnswers) raw() [][]byte {
	raw := make([][]byte, len(a.Valid))
	for i, v := range a.Valid {
		raw[i] = v.Record.Bytes()
	}
	return raw
}

// PutRecord stores rec (verified first with record.Parse) at the K nodes
// closest to its slot for lifetime, this node included when it is a full
// node among them. It returns how many nodes took it. A node holding a
// newer or another version refuses it; when every node refused, the error
// wraps ErrNotStored and their reasons, so errors.Is(err, record.ErrStale)
// (or ErrForked, ErrRevoked) tells why.
func (d *DHT) PutRecord(ctx context.Context, rec []byte, lifetime time.Duration) (int, error) {
	secs, err := lifetimeSeconds(lifetime)
	if err != nil {
		return 0, err
	}
	r, err := record.Parse(rec)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrNotARecord, err)
	}
	slot := r.Slot()
	closest, _, lerr := d.Lookup(ctx, slot)
	if lerr != nil && (d.cfg.Store == nil || ctx.Err() != nil) {
		return 0, lerr
	}
	return d.storeAt(ctx, slot, rec, secs, closest, d.holders(block.TypeRecord))
}

// Records asks the K nodes closest to slot (and the own store) for the
// record they hold there. A node that answers bytes that are not a valid
// record of the slot is a liar: it leaves the routing table and its
// answer goes to Refused. No answer at all is not an error: the slot is
// empty, or its holders are gone.
func (d *DHT) Records(ctx context.Context, slot block.ID) (RecordAnswers, error) {
	var out RecordAnswers
	if d.cfg.Store != nil {
		data, meta, err := d.cfg.Store.Get(ctx, slot)
		switch {
		case err == nil:
			if r, err := record.Parse(data); err == nil && r.Slot() == slot {
				out.Valid = append(out.Valid, RecordAnswer{From: d.cfg.ID, Record: r, Lifetime: meta.Remaining(d.now())})
			}
		case !errors.Is(err, blockstore.ErrNotFound):
			d.log.Warn("kademlia: reading a record", "slot", slot.Short(), "err", err)
		}
	}
	closest, _, err := d.Lookup(ctx, slot)
	if err != nil {
		if len(out.Valid) > 0 && ctx.Err() == nil {
			return out, nil
		}
		return out, err
	}
	var mu sync.Mutex
	fanOut(ctx, closest, func(ctx context.Context, c transport.Contact) error {
		a, err := d.askRecord(ctx, c, slot)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case errors.Is(err, ErrBadReply):
			out.Refused = append(out.Refused, err)
		case a != nil:
			out.Valid = append(out.Valid, *a)
		}
		return err
	})
	return out, ctx.Err()
}

// askRecord sends FIND_BLOCK for slot to c: nil when c holds nothing
// there.
func (d *DHT) askRecord(ctx context.Context, c transport.Contact, slot block.ID) (*RecordAnswer, error) {
	resp, _, err := d.request(ctx, c, FindBlock{ID: slot})
	if err != nil {
		return nil, err
	}
	br, ok := resp.(BlockReply)
	if !ok {
		return nil, nil // NODES: not held
	}
	r, err := record.Parse(br.Block)
	if err == nil && r.Slot() != slot {
		err = fmt.Errorf("%w: %v is a record of slot %v", record.ErrSlot, r.Kind, r.Slot().Short())
	}
	if err != nil {
		d.log.Warn("kademlia: peer answered a record that does not verify for the slot", "peer", c.ID.Short(), "slot", slot.Short(), "err", err)
		d.table.remove(c.ID)
		return nil, fmt.Errorf("%w: %v answered FIND_BLOCK %v: %w", ErrBadReply, c.ID.Short(), slot.Short(), err)
	}
	return &RecordAnswer{From: c.ID, Record: r, Lifetime: time.Duration(br.Lifetime) * time.Second}, nil
}

// GetRecord returns the newest record at slot that the K closest nodes
// hold (record.Newest: a revoked certificate wins, a key log extends every
// other answer): record.ErrForked when two answers are not versions of
// one history; record.ErrNotFound when none verifies, wrapping the
// reasons of the answers refused. The lifetime is the longest any node
// said is left of that version.
func (d *DHT) GetRecord(ctx context.Context, slot block.ID) (*record.Record, time.Duration, error) {
	answers, err := d.Records(ctx, slot)
	if err != nil && len(answers.Valid) == 0 {
		return nil, 0, errors.Join(append([]error{err}, answers.Refused...)...)
	}
	r, err := record.Newest(slot, answers.raw())
	if errors.Is(err, record.ErrNotFound) && len(answers.Refused) > 0 {
		return nil, 0, errors.Join(append([]error{err}, answers.Refused...)...)
	}
	if err != nil {
		return nil, 0, err
	}
	var left time.Duration
	for _, a := range answers.Valid {
		if string(a.Record.Bytes()) == string(r.Bytes()) {
			left = max(left, a.Lifetime)
		}
	}
	return r, left, nil
}

// KeyState resolves address to the state its key log says (docs/PROTOCOL.md
// 15.5, record.ResolveKeyLog over the K closest nodes' answers): the
// current signing key and pubkey block, or that the identity was revoked,
// moved, or its history forked (then Forked is set and the state is the
// part the answers share). An identity with no key log in the network is
// at its inception: its pubkey block, the address, is fetched and
// verified. ErrNotFound when neither is found.
func (d *DHT) KeyState(ctx context.Context, address block.ID) (record.KeyState, error) {
	answers, err := d.Records(ctx, record.KeyLogSlot(address))
	if err != nil && len(answers.Valid) == 0 && ctx.Err() != nil {
		return record.KeyState{}, err
	}
	st, rerr := record.ResolveKeyLog(address, answers.raw())
	if !errors.Is(rerr, record.ErrNotFound) {
		return st, rerr
	}
	b, _, err := d.Get(ctx, address)
	if err != nil {
		return record.KeyState{}, fmt.Errorf("%w: no key log and no pubkey block of %s: %w", ErrNotFound, identity.FormatAddress(address), err)
	}
	p, err := identity.ParsePubkey(b)
	if err != nil {
		return record.KeyState{}, fmt.Errorf("kademlia: the block at %s is not a pubkey block: %w", identity.FormatAddress(address), err)
	}
	return record.InitialState(p), nil
}

// RefreshRecord finds the newest record at slot (GetRecord) and stores it
// again at the K closest nodes for lifetime (at most block.MaxLifetime):
// what a client does for its contacts' records, and anyone may do for
// anyone's, so a record outlives its owner being offline. Nodes that hold
// it already only extend its expiry; those that missed it, or hold an
// older version, take it. It returns the record and how many nodes took
// it.
func (d *DHT) RefreshRecord(ctx context.Context, slot block.ID, lifetime time.Duration) (*record.Record, int, error) {
	secs, err := lifetimeSeconds(lifetime)
	if err != nil {
		return nil, 0, err
	}
	r, _, err := d.GetRecord(ctx, slot)
	if err != nil {
		return nil, 0, err
	}
	closest, _, lerr := d.Lookup(ctx, slot)
	if lerr != nil && (d.cfg.Store == nil || ctx.Err() != nil) {
		return r, 0, lerr
	}
	n, err := d.storeAt(ctx, slot, r.Bytes(), secs, closest, d.holders(block.TypeRecord))
	return r, n, err
}

// pullNewer asks c for the record it holds at slot after c refused ours
// as stale, and keeps it in place of ours when it verifies and supersedes
// it: a holder that missed a version catches up as it republishes.
func (d *DHT) pullNewer(ctx context.Context, c transport.Contact, slot block.ID) {
	a, err := d.askRecord(ctx, c, slot)
	if err != nil || a == nil || a.Lifetime < time.Second {
		return
	}
	if _, err := d.cfg.Store.Put(ctx, a.Record.Bytes(), a.Lifetime, blockstore.PutOptions{Source: blockstore.Source{Node: c.ID.String()}}); err != nil {
		d.log.Debug("kademlia: keeping the newer record a peer holds", "slot", slot.Short(), "peer", c.ID.Short(), "err", err)
	}
}
