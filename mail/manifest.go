package mail

import (
	"encoding/binary"
	"fmt"

	"github.com/flowmail/flowmail/block"
)

const (
	manifestVersion = 5

	// manifestFlagDataDeletion marks data blocks that carry a deletion hash.
	manifestFlagDataDeletion = 0x01

	// manifestAlign is the multiple the manifest is padded to, so that the
	// index block's nonce lands in a final one-compression SHA-512 chunk
	// (spec 6 and 9.5).
	manifestAlign = 128

	// manifestFixedSize counts the fields before the shard IDs, without the
	// optional data deletion preimage.
	manifestFixedSize = 1 + 1 + keySize + keySize + 8 + 4 + 4 + 2 + 2 + GrantIDSize + GrantMACSize
)

// Widths of the grant claim every manifest carries (spec 9.5, 17.3).
const (
	GrantIDSize  = 16
	GrantMACSize = 32
)

// Manifest is the plaintext of an index block (spec 9.5): what one
// recipient needs to find, rebuild, decrypt and delete a mail.
type Manifest struct {
	IndexDeletion   [keySize]byte // preimage of the index block's deletion hash
	HasDataDeletion bool          // data blocks carry a deletion hash
	DataDeletion    [keySize]byte // its preimage, when HasDataDeletion
	ContentKey      [keySize]byte
	Layout          Layout     // from compressed_len, groups and the last group's counts
	ShardIDs        []block.ID // every group's k data then m parity shards, group by group
	// GrantID and GrantMAC are the grant claim (spec 17.3), zero when the
	// mail carries the full work. They are always encoded, so a
	// manifest's length says nothing of a grant.
	GrantID  [GrantIDSize]byte
	GrantMAC [GrantMACSize]byte
}

// HasClaim reports whether the manifest claims a grant.
func (m *Manifest) HasClaim() bool { return m.GrantID != [GrantIDSize]byte{} }

func (m *Manifest) unpaddedSize() int {
	n := manifestFixedSize + len(m.ShardIDs)*block.IDSize
	if m.HasDataDeletion {
		n += keySize
	}
	return n
}

// manifestSize pads n up to the next multiple of manifestAlign.
func manifestSize(n int) int { return (n + manifestAlign - 1) / manifestAlign * manifestAlign }

// Encode returns the padded manifest bytes. The fields are written as they
// stand; Build fills them so that DecodeManifest accepts the result.
func (m *Manifest) Encode() []byte {
	b := make([]byte, 0, manifestSize(m.unpaddedSize()))
	flags := byte(0)
	if m.HasDataDeletion {
		flags |= manifestFlagDataDeletion
	}
	b = append(b, manifestVersion, flags)
	b = append(b, m.IndexDeletion[:]...)
	if m.HasDataDeletion {
		b = append(b, m.DataDeletion[:]...)
	}
	b = append(b, m.ContentKey[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Layout.CompressedLen))
	b = binary.BigEndian.AppendUint32(b, uint32(m.Layout.Groups))
	b = binary.BigEndian.AppendUint32(b, uint32(m.Layout.Last.ShardSize))
	b = binary.BigEndian.AppendUint16(b, uint16(m.Layout.Last.Data))
	b = binary.BigEndian.AppendUint16(b, uint16(m.Layout.Last.Parity))
	b = append(b, m.GrantID[:]...)
	b = append(b, m.GrantMAC[:]...)
	for _, id := range m.ShardIDs {
		b = append(b, id[:]...)
	}
	return b[:cap(b)] // the padding: zero bytes up to the 128-byte multiple
}

// GroupShards returns the shard IDs of group g, data shards first.
func (m *Manifest) GroupShards(g int) []block.ID {
	first := m.Layout.FirstShard(g)
	return m.ShardIDs[first : first+m.Layout.Group(g).Shards()]
}

// DecodeManifest decodes and checks a manifest: version, flags, the
// compressed length, the group count and last group's layout that 9.3
// and 9.4 derive from it, within the limits, exact length and zero
// padding.
func DecodeManifest(b []byte) (*Manifest, error) {
	if len(b) < manifestFixedSize {
		return nil, fmt.Errorf("%w: manifest of %d bytes, at least %d needed", ErrTruncated, len(b), manifestFixedSize)
	}
	if b[0] != manifestVersion {
		return nil, fmt.Errorf("%w: manifest version %d, this code speaks %d", ErrVersion, b[0], manifestVersion)
	}
	if b[1]&^manifestFlagDataDeletion != 0 {
		return nil, fmt.Errorf("%w: manifest flags %#02x set reserved bits", ErrFlags, b[1])
	}
	m := &Manifest{HasDataDeletion: b[1]&manifestFlagDataDeletion != 0}
	off := 2 + copy(m.IndexDeletion[:], b[2:])
	if m.HasDataDeletion {
		if len(b) < manifestFixedSize+keySize {
			return nil, fmt.Errorf("%w: manifest of %d bytes, at least %d needed with a data deletion preimage", ErrTruncated, len(b), manifestFixedSize+keySize)
		}
		off += copy(m.DataDeletion[:], b[off:])
	}
	off += copy(m.ContentKey[:], b[off:])
	zlen := binary.BigEndian.Uint64(b[off:])
	groups := binary.BigEndian.Uint32(b[off+8:])
	last := GroupLayout{
		ShardSize: int(binary.BigEndian.Uint32(b[off+12:])),
		Data:      int(binary.BigEndian.Uint16(b[off+16:])),
		Parity:    int(binary.BigEndian.Uint16(b[off+18:])),
	}
	off += 20
	off += copy(m.GrantID[:], b[off:])
	off += copy(m.GrantMAC[:], b[off:])
	if !m.HasClaim() && m.GrantMAC != [GrantMACSize]byte{} {
		return nil, fmt.Errorf("%w: no grant is claimed, yet grant_mac is not zero", ErrGrantMAC)
	}
	if zlen < 1 || zlen > MaxCompressedLen {
		return nil, fmt.Errorf("%w: %d compressed bytes, allowed 1 to %d", ErrCompressedLen, zlen, MaxCompressedLen)
	}
	if groups < 1 || groups > MaxGroups {
		return nil, fmt.Errorf("%w: %d groups, allowed 1 to %d", ErrGroupCount, groups, MaxGroups)
	}
	if !isShardSize(last.ShardSize) {
		return nil, fmt.Errorf("%w: %d, want one of %v", ErrShardSize, last.ShardSize, ShardSizes)
	}
	if k, p := last.Data, last.Parity; k < 2 || k > GroupDataShards || p != ParityShards(k) {
		return nil, fmt.Errorf("%w: %d data and %d parity shards (data 2 to %d, parity by the table of spec 9.4)", ErrShardCount, k, p, GroupDataShards)
	}
	l, _ := LayoutFor(int64(zlen)) // zlen is in range
	if int(groups) != l.Groups || last != l.Last {
		return nil, fmt.Errorf("%w: %d compressed bytes take %d groups, the last of %d+%d shards of %d; the manifest says %d, %d+%d of %d",
			ErrLayout, zlen, l.Groups, l.Last.Data, l.Last.Parity, l.Last.ShardSize, groups, last.Data, last.Parity, last.ShardSize)
	}
	m.Layout = l
	n := l.Shards()
	want := manifestSize(off + n*block.IDSize)
	switch {
	case len(b) < want:
		return nil, fmt.Errorf("%w: manifest of %d bytes, %d shard IDs and padding need %d", ErrTruncated, len(b), n, want)
	case len(b) > want:
		return nil, fmt.Errorf("%w: manifest of %d bytes, %d expected", ErrTrailing, len(b), want)
	}
	m.ShardIDs = make([]block.ID, n)
	for i := range m.ShardIDs {
		off += copy(m.ShardIDs[i][:], b[off:])
	}
	for _, c := range b[off:] {
		if c != 0 {
			return nil, fmt.Errorf("%w: manifest padding holds %#02x", ErrPadding, c)
		}
	}
	return m, nil
}

func isShardSize(s int) bool {
	for _, x := range ShardSizes {
		if s == x {
			return true
		}
	}
	return false
}
