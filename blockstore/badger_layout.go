package blockstore

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/flowmail/flowmail/block"
)

// On-disk layout of the Badger store (local state, not wire format; a node
// may change it between releases with a new layout version). A key starts
// with one byte naming its family; integers are big-endian; times are
// Unix nanoseconds in a u64 (i64 values never negative here).
//
//	key                           value                                        Badger TTL
//	'v'                           u8 layout version (1) || self [32]           none
//	's'                           blocks, bytes, evicted, expired, corrupt:    none
//	                              five u64
//	'm' || id                     type u8 || flags u8 || size u32 ||           none
//	                              stored_at u64 || expires u64
//	'b' || id                     flags u8 || stored_at u64 || expires u64 ||  expires
//	                              the block
//	'e' || expires u64 || id      empty                                        none
//	'd' || (id XOR self)          size u32 (unpinned blocks only)              none
//	'i' || id                     stored_at u64 || expires u64                 expires
//	                              (index blocks only)
//	't' || id                     until u64 (tombstone after DELETE)           until
//
// flags: bit 0 pinned. 'm' is authoritative: a block is held iff its 'm' key
// exists, and the counters in 's' are the sums over 'm' (they are written in
// the same transaction as every change). 'b' repeats the metadata so Get
// reads one key. 'e' is the expiry queue a sweep walks from its start;
// 'd' orders unpinned blocks by distance, so the farthest is a reverse
// seek; 'i' makes a D-bit ID prefix one contiguous key range for List.
// Badger's TTL (whole seconds, rounded up, wall clock) hides expired 'b',
// 'i' and 't' keys before any sweep; the sweep then removes the rest.
const (
	familyLayout    = 'v'
	familyCounters  = 's'
	familyMeta      = 'm'
	familyBlock     = 'b'
	familyExpiry    = 'e'
	familyDistance  = 'd'
	familyIndex     = 'i'
	familyTombstone = 't'

	layoutVersion = 1

	flagPinned = 1 << 0

	metaRecordSize  = 1 + 1 + 4 + 8 + 8
	blockPrefixSize = 1 + 8 + 8
	countersSize    = 5 * 8
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

// ttlSeconds is Badger's ExpiresAt for a deadline: rounded up, so Badger
// never drops a key before the store's own expiry check would.
func ttlSeconds(t time.Time) uint64 {
	n := unixNanos(t)
	return (n + uint64(time.Second) - 1) / uint64(time.Second)
}

// record is the metadata of one held block, as kept in 'm'.
type record struct {
	typ      block.Type
	pinned   bool
	size     int
	storedAt time.Time
	expires  time.Time
}

func (r record) meta(id block.ID) Meta {
	return Meta{ID: id, Type: r.typ, Size: r.size, StoredAt: r.storedAt, Expires: r.expires, Pinned: r.pinned}
}

func (r record) flags() byte {
	if r.pinned {
		return flagPinned
	}
	return 0
}

func (r record) encode() []byte {
	v := make([]byte, 0, metaRecordSize)
	v = append(v, byte(r.typ), r.flags())
	v = binary.BigEndian.AppendUint32(v, uint32(r.size))
	v = binary.BigEndian.AppendUint64(v, unixNanos(r.storedAt))
	return binary.BigEndian.AppendUint64(v, unixNanos(r.expires))
}

func decodeRecord(v []byte) (record, error) {
	if len(v) != metaRecordSize {
		return record{}, fmt.Errorf("%w: metadata of %d bytes, want %d", ErrCorrupt, len(v), metaRecordSize)
	}
	return record{
		typ:      block.Type(v[0]),
		pinned:   v[1]&flagPinned != 0,
		size:     int(binary.BigEndian.Uint32(v[2:])),
		storedAt: fromNanos(binary.BigEndian.Uint64(v[6:])),
		expires:  fromNanos(binary.BigEndian.Uint64(v[14:])),
	}, nil
}

// blockValue is the value of a 'b' key: the record's times and flags, then
// the block.
func (r record) blockValue(b []byte) []byte {
	v := make([]byte, 0, blockPrefixSize+len(b))
	v = append(v, r.flags())
	v = binary.BigEndian.AppendUint64(v, unixNanos(r.storedAt))
	v = binary.BigEndian.AppendUint64(v, unixNanos(r.expires))
	return append(v, b...)
}

// decodeBlockValue splits a 'b' value into its record and block. The type
// and size come from the block itself.
func decodeBlockValue(v []byte) (record, []byte, error) {
	if len(v) < blockPrefixSize+block.HeaderSize {
		return record{}, nil, fmt.Errorf("%w: block value of %d bytes", ErrCorrupt, len(v))
	}
	b := v[blockPrefixSize:]
	return record{
		typ:      block.Type(b[1]),
		pinned:   v[0]&flagPinned != 0,
		size:     len(b),
		storedAt: fromNanos(binary.BigEndian.Uint64(v[1:])),
		expires:  fromNanos(binary.BigEndian.Uint64(v[9:])),
	}, b, nil
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
