package blockstore

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/flowmail/flowmail/block"
)

// On-disk layout of the Badger store (local state, not wire format; a node
// may change it between releases with a new layout version). A key starts
// with one byte naming its family; integers are big-endian; times are
// Unix nanoseconds in a u64 (i64 values never negative here). docs/
// PROTOCOL.md section 5.1 repeats this table.
//
//	key                           value
//	'v'                           u8 layout version (3) || self [32]
//	's'                           blocks, bytes, evicted, expired, corrupt:
//	                              five u64
//	'm' || key                    type u8 || flags u8 || size u32 ||
//	                              stored_at u64 || expires u64 || sum u64
//	                              [|| deletion hash [32] when flag bit 1]
//	'b' || key                    the 'm' value (as it was when 'b' was
//	                              last written) || the block, exactly as
//	                              stored
//	'e' || expires u64 || key     empty: the expiry queue (blocks and
//	                              tombstones)
//	'd' || (key XOR self)         size u32 (unpinned blocks only)
//	'i' || key                    stored_at u64 || expires u64
//	                              (index blocks only)
//	't' || key                    until u64 (tombstone after DELETE)
//	'z'                           empty: written and dropped to flush
//	                              memtables before value-log GC
//
// key is the block's ID. (Records, later, are kept at their slot: they
// will set flag bit 2 and append their ID to 'm', and decodeRecord
// refuses that bit until then.) flags: bit 0 pinned, bit 1 the block
// carries a deletion hash (copied here so a DELETE never reads the
// block). sum is XXH64 (seed 0) of the block,
// taken after Put checked the block's ID: a Get compares it with the
// bytes it reads instead of hashing them with SHA-512.
//
// 'm' is authoritative: a block is held iff its 'm' key exists, and the
// counters in 's' are the sums over 'm' (written in the same transaction
// as every change). 'b' repeats the 'm' value in front of the block so a
// Get is one Badger lookup (layout 3; layout 2 read 'm' and 'b', two
// lookups, 0.58x a raw Badger Get). 'b' is written when the block is
// first stored and again only when its expiry is extended or it is pinned
// (both rare: a replayed STORE moves nothing, see MinExtension), in the
// same transaction as 'm'; a DELETE, an eviction and a sweep read 'm'
// alone, never the block. 'e' is the expiry queue a sweep walks from its
// start; 'd' orders unpinned blocks by distance, so the farthest is a
// reverse seek; 'i' makes a D-bit ID prefix one contiguous key range for
// List. No key has a Badger TTL: expiry follows the store's clock alone.
const (
	familyLayout    = 'v'
	familyCounters  = 's'
	familyMeta      = 'm'
	familyBlock     = 'b'
	familyExpiry    = 'e'
	familyDistance  = 'd'
	familyIndex     = 'i'
	familyTombstone = 't'
	familyFlush     = 'z'

	layoutVersion = 3

	flagPinned   = 1 << 0
	flagDeletion = 1 << 1
	knownFlags   = flagPinned | flagDeletion

	metaRecordSize = 1 + 1 + 4 + 8 + 8 + 8
	countersSize   = 5 * 8
)

func idKey(family byte, id block.ID) []byte {
	k := make([]byte, 1+block.IDSize)
	k[0] = family
	copy(k[1:], id[:])
	return k
}

func expiryKey(expires time.Time, id block.ID) []byte {
	k := make([]byte, 1, 1+8+block.IDSize)
	k[0] = familyExpiry
	k = binary.BigEndian.AppendUint64(k, unixNanos(expires))
	return append(k, id[:]...)
}

// decodeExpiryKeyTime returns the expiry in an 'e' key of full length.
func decodeExpiryKeyTime(k []byte) uint64 { return binary.BigEndian.Uint64(k[1:]) }

// parseFamilyKey returns the ID at the end of a key of the given length.
func parseFamilyKey(k []byte, size int) (block.ID, error) {
	var id block.ID
	if len(k) != size {
		return id, fmt.Errorf("%w: key %x of %d bytes, want %d", ErrCorrupt, k, len(k), size)
	}
	copy(id[:], k[size-block.IDSize:])
	return id, nil
}

func unixNanos(t time.Time) uint64 { return uint64(max(t.UnixNano(), 0)) }

func fromNanos(n uint64) time.Time { return time.Unix(0, int64(n)) }

// checksum is the sum kept in 'm': cheap to recompute on every read, and
// enough to notice bytes that changed on disk (an accidental change
// escapes it with probability 2^-64).
func checksum(b []byte) uint64 { return xxhash.Sum64(b) }

// record is the metadata of one held block, as kept in 'm'.
type record struct {
	typ         block.Type
	pinned      bool
	size        int
	storedAt    time.Time
	expires     time.Time
	sum         uint64
	hasDeletion bool
	deletion    [32]byte
}

func newRecord(a admitted, pinned bool, now time.Time) record {
	return record{
		typ: a.header.Type, pinned: pinned, size: len(a.data), storedAt: now, expires: a.expires,
		sum: checksum(a.data), hasDeletion: a.header.HasDeletion, deletion: a.header.DeletionHash,
	}
}

func (r record) meta(id block.ID) Meta {
	return Meta{ID: id, Type: r.typ, Size: r.size, StoredAt: r.storedAt, Expires: r.expires, Pinned: r.pinned}
}

func (r record) flags() byte {
	var f byte
	if r.pinned {
		f |= flagPinned
	}
	if r.hasDeletion {
		f |= flagDeletion
	}
	return f
}

func (r record) encode() []byte {
	v := make([]byte, 0, metaRecordSize+32)
	v = append(v, byte(r.typ), r.flags())
	v = binary.BigEndian.AppendUint32(v, uint32(r.size))
	v = binary.BigEndian.AppendUint64(v, unixNanos(r.storedAt))
	v = binary.BigEndian.AppendUint64(v, unixNanos(r.expires))
	v = binary.BigEndian.AppendUint64(v, r.sum)
	if r.hasDeletion {
		v = append(v, r.deletion[:]...)
	}
	return v
}

func decodeRecord(v []byte) (record, error) {
	if len(v) < metaRecordSize {
		return record{}, fmt.Errorf("%w: metadata of %d bytes, want at least %d", ErrCorrupt, len(v), metaRecordSize)
	}
	flags := v[1]
	want := metaRecordSize
	if flags&flagDeletion != 0 {
		want += 32
	}
	if flags&^knownFlags != 0 || len(v) != want {
		return record{}, fmt.Errorf("%w: metadata of %d bytes with flags %#x", ErrCorrupt, len(v), flags)
	}
	r := record{
		typ:         block.Type(v[0]),
		pinned:      flags&flagPinned != 0,
		size:        int(binary.BigEndian.Uint32(v[2:])),
		storedAt:    fromNanos(binary.BigEndian.Uint64(v[6:])),
		expires:     fromNanos(binary.BigEndian.Uint64(v[14:])),
		sum:         binary.BigEndian.Uint64(v[22:]),
		hasDeletion: flags&flagDeletion != 0,
	}
	copy(r.deletion[:], v[metaRecordSize:])
	return r, nil
}

// blockValue is the 'b' value: r's encoding, then the block.
func blockValue(r record, b []byte) []byte {
	v := make([]byte, 0, metaRecordSize+32+len(b))
	v = append(v, r.encode()...)
	return append(v, b...)
}

// decodeBlockValue splits a 'b' value into its record and its block, and
// checks the block against the record's size and checksum. The block
// aliases v.
func decodeBlockValue(v []byte) (record, []byte, error) {
	if len(v) < metaRecordSize {
		return record{}, nil, fmt.Errorf("%w: block value of %d bytes, want at least %d", ErrCorrupt, len(v), metaRecordSize)
	}
	n := metaRecordSize
	if v[1]&flagDeletion != 0 {
		n += 32
	}
	if len(v) < n {
		return record{}, nil, fmt.Errorf("%w: block value of %d bytes, want at least %d", ErrCorrupt, len(v), n)
	}
	r, err := decodeRecord(v[:n])
	if err != nil {
		return r, nil, err
	}
	b := v[n:]
	// The ID was checked at Put; a checksum is enough to see that the
	// bytes did not change since (docs/PROTOCOL.md section 5).
	if len(b) != r.size || checksum(b) != r.sum {
		return r, nil, fmt.Errorf("%w: %d bytes read, %d stored", ErrCorrupt, len(b), r.size)
	}
	return r, b, nil
}

func indexValue(r record) []byte {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 16), unixNanos(r.storedAt))
	return binary.BigEndian.AppendUint64(v, unixNanos(r.expires))
}

func decodeIndexValue(v []byte) (storedAt, expires time.Time, err error) {
	if len(v) != 16 {
		return storedAt, expires, fmt.Errorf("%w: index entry of %d bytes, want 16", ErrCorrupt, len(v))
	}
	return fromNanos(binary.BigEndian.Uint64(v)), fromNanos(binary.BigEndian.Uint64(v[8:])), nil
}

func sizeValue(size int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(size)) }

func decodeSize(v []byte) (int64, error) {
	if len(v) != 4 {
		return 0, fmt.Errorf("%w: size of %d bytes, want 4", ErrCorrupt, len(v))
	}
	return int64(binary.BigEndian.Uint32(v)), nil
}

func timeValue(t time.Time) []byte { return binary.BigEndian.AppendUint64(nil, unixNanos(t)) }

func decodeTime(v []byte) (time.Time, error) {
	if len(v) != 8 {
		return time.Time{}, fmt.Errorf("%w: time of %d bytes, want 8", ErrCorrupt, len(v))
	}
	return fromNanos(binary.BigEndian.Uint64(v)), nil
}

// counters are the persisted part of Stats.
type counters struct {
	blocks, bytes, evicted, expired, corrupt uint64
}

func (c counters) encode() []byte {
	v := make([]byte, 0, countersSize)
	for _, n := range []uint64{c.blocks, c.bytes, c.evicted, c.expired, c.corrupt} {
		v = binary.BigEndian.AppendUint64(v, n)
	}
	return v
}

func decodeCounters(v []byte) (counters, error) {
	if len(v) != countersSize {
		return counters{}, fmt.Errorf("%w: counters of %d bytes, want %d", ErrCorrupt, len(v), countersSize)
	}
	n := func(i int) uint64 { return binary.BigEndian.Uint64(v[8*i:]) }
	return counters{n(0), n(1), n(2), n(3), n(4)}, nil
}

func (c counters) stats(quota int64) Stats {
	return Stats{
		Blocks:     int(c.blocks),
		Bytes:      int64(c.bytes),
		QuotaBytes: max(quota, 0),
		Evicted:    c.evicted,
		Expired:    c.expired,
		Corrupt:    c.corrupt,
	}
}
