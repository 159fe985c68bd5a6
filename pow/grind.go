package pow

import (
	"crypto/sha512"
	"encoding"
	"encoding/binary"

	"github.com/flowmail/flowmail/block"
)

// grinder holds the SHA-512/256 state after every complete 128-byte chunk
// that precedes the nonce, so each trial hashes only the tail.
type grinder struct {
	mid  []byte // MarshalBinary of the state over prefix
	tail []byte // bytes after prefix, nonce last
}

func newGrinder(blk []byte) *grinder {
	cut := (len(blk) - block.NonceSize) / sha512.BlockSize * sha512.BlockSize
	h := sha512.New512_256()
	h.Write(blk[:cut])
	mid, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic("pow: sha512 state cannot be marshalled: " + err.Error())
	}
	return &grinder{mid: mid, tail: append([]byte(nil), blk[cut:]...)}
}

// search tries nonces base..base+n-1 and returns the first that works.
func (g *grinder) search(base, n uint64, target block.ID, bits int) (uint64, bool) {
	tail := append([]byte(nil), g.tail...)
	h := sha512.New512_256()
	u := h.(encoding.BinaryUnmarshaler)
	var inner [32]byte
	for i := uint64(0); i < n; i++ {
		nonce := base + i
		binary.BigEndian.PutUint64(tail[len(tail)-block.NonceSize:], nonce)
		if err := u.UnmarshalBinary(g.mid); err != nil {
			panic("pow: sha512 state cannot be restored: " + err.Error())
		}
		h.Write(tail)
		h.Sum(inner[:0])
		id := block.ID(sha512.Sum512_256(inner[:]))
		if block.CommonPrefixLen(id, target) >= bits {
			return nonce, true
		}
	}
	return 0, false
}
