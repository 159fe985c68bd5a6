package sha512block

import (
	"crypto/sha512"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// TestBlockMatchesSHA512256 pads messages of every length that takes one
// or two chunks and compresses them from IV256: the first four words must
// be crypto/sha512's SHA-512/256.
func TestBlockMatchesSHA512256(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for n := range 240 {
		msg := make([]byte, n)
		for i := range msg {
			msg[i] = byte(r.Uint32())
		}
		padded := append(append([]byte{}, msg...), 0x80)
		for len(padded)%128 != 112 {
			padded = append(padded, 0)
		}
		padded = binary.BigEndian.AppendUint64(append(padded, make([]byte, 8)...), uint64(n)*8)
		h := IV256
		for c := 0; c < len(padded); c += 128 {
			w := Words(padded[c:])
			Block(&h, &w)
		}
		want := sha512.Sum512_256(msg)
		for i := range 4 {
			if got := binary.BigEndian.Uint64(want[i*8:]); h[i] != got {
				t.Fatalf("%d bytes: word %d = %#x, want %#x", n, i, h[i], got)
			}
		}
	}
}
