package mail

import (
	"encoding/binary"
	"fmt"

	"github.com/flowmail/flowmail/block"
)

const (
	manifestVersion = 1

	// manifestFlagDataDeletion marks data blocks that carry a deletion hash.
	manifestFlagDataDeletion = 0x01

	// manifestAlign is the multiple the manifest is padded to, so that the
	// index block's nonce lands in a final one-compression SHA-512 chunk
	// (spec 6 and 9.5).
	manifestAlign = 128

	// manifestFixedSize counts the fields before the shard IDs, without the
	// optional data deletion preimage.
	manifestFixedSize = 1 + 1 + keySize + keySize + 4 + 4 + 2 + 2
)

// Manifest is the plaintext of an index block (spec 9.5): what one
// recipient needs to find, rebuild, decrypt and delete a mail.
type Manifest struct {
	IndexDeletion   [keySize]byte // preimage of the index block's deletion hash
	HasDataDeletion bool          // data blocks carry a deletion hash
	DataDeletion    [keySize]byte // its preimage, when HasDataDeletion
	ContentKey      [keySize]byte
	CompressedLen   int // len(Z)
	ShardSize       int // S
	DataShards      int // k
	ParityShards    int // m
	ShardIDs        []block.ID
}

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
	b = binary.BigEndian.AppendUint32(b, uint32(m.CompressedLen))
	b = binary.BigEndian.AppendUint32(b, uint32(m.ShardSize))
	b = binary.BigEndian.AppendUint16(b, uint16(m.DataShards))
	b = binary.BigEndian.AppendUint16(b, uint16(m.ParityShards))
	for _, id := range m.ShardIDs {
		b = append(b, id[:]...)
	}
	return b[:cap(b)] // the padding: zero bytes up to the 128-byte multiple
}

// DecodeManifest decodes and checks a manifest: version, flags, shard size
// and counts, the compressed length and the layout 9.3 and 9.4 derive
// from it, exact length and zero padding.
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
	m.CompressedLen = int(binary.BigEndian.Uint32(b[off:]))
	m.ShardSize = int(binary.BigEndian.Uint32(b[off+4:]))
	m.DataShards = int(binary.BigEndian.Uint16(b[off+8:]))
	m.ParityShards = int(binary.BigEndian.Uint16(b[off+10:]))
	off += 12
	if !isShardSize(m.ShardSize) {
		return nil, fmt.Errorf("%w: %d, want one of %v", ErrShardSize, m.ShardSize, ShardSizes)
	}
	k, p := m.DataShards, m.ParityShards
	if k < 1 || k > MaxDataShards || p < 1 || p > MaxDataShards || k+p > 256 {
		return nil, fmt.Errorf("%w: %d data and %d parity shards (each 1 to %d, together at most 256)", ErrShardCount, k, p, MaxDataShards)
	}
	if m.CompressedLen > k*m.ShardSize-tagSize {
		return nil, fmt.Errorf("%w: %d bytes do not fit %d shards of %d bytes", ErrCompressedLen, m.CompressedLen, k, m.ShardSize)
	}
	if s, wk, wp, err := shardLayout(m.CompressedLen); err != nil || s != m.ShardSize || wk != k || wp != p {
		return nil, fmt.Errorf("%w: %d compressed bytes take %d data and %d parity shards of %d bytes, the manifest says %d, %d of %d",
			ErrLayout, m.CompressedLen, wk, wp, s, k, p, m.ShardSize)
	}
	n := k + p
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

// shardLayout is spec 9.3 step 2 and 9.4: the shard size S, the data
// shards k and the parity shards m for zlen compressed bytes.
func shardLayout(zlen int) (s, k, m int, err error) {
	n := zlen + tagSize
	s = ShardSizes[len(ShardSizes)-1]
	for _, x := range ShardSizes {
		if n <= 16*x {
			s = x
			break
		}
	}
	k = (n + s - 1) / s
	if k > MaxDataShards {
		return s, k, 0, fmt.Errorf("%w: %d compressed bytes need %d shards of %d bytes, at most %d allowed", ErrTooLarge, zlen, k, s, MaxDataShards)
	}
	return s, k, (k + 1) / 2, nil
}
