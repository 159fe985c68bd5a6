package pow

import (
	"bytes"
	"crypto/sha512"
	"testing"

	"github.com/flowmail/flowmail/block"
)

// refVerify is Verify written the long way: both hashes from crypto/sha512
// and the shared prefix counted bit by bit.
func refVerify(blk []byte, target block.ID, bits int) bool {
	if len(blk) < 8 || bits < 0 {
		return false
	}
	inner := sha512.Sum512_256(blk)
	id := sha512.Sum512_256(inner[:])
	shared := 0
	for i := 0; i < 256 && id[i/8]>>(7-i%8)&1 == target[i/8]>>(7-i%8)&1; i++ {
		shared++
	}
	return shared >= bits
}

func FuzzVerify(f *testing.F) {
	f.Add(make([]byte, block.MinIndexSize), make([]byte, 32), 0)
	f.Add([]byte("12345678"), []byte{0xff}, 3)
	f.Add([]byte("1234567"), []byte{}, 0)
	f.Add(make([]byte, 120), make([]byte, 40), 257)
	f.Add(make([]byte, 64), make([]byte, 32), -5)
	f.Fuzz(func(t *testing.T, blk, tb []byte, bits int) {
		var target block.ID
		copy(target[:], tb)
		if got, want := Verify(blk, target, bits), refVerify(blk, target, bits); got != want {
			t.Fatalf("Verify(%d bytes, %v, %d) = %v, reference says %v", len(blk), target, bits, got, want)
		}
		// A block meets its own ID in full.
		if len(blk) >= 8 && !Verify(blk, block.Sum(blk), MaxBits) {
			t.Fatal("a block does not meet its own ID")
		}
	})
}

// FuzzKernel: every kernel hashes arbitrary blocks from arbitrary nonces
// as crypto/sha512 does. Each input is tried as it is (most lengths grind
// on the portable kernel) and zero-extended to the next index block
// length mod 128, where the SIMD kernels run.
func FuzzKernel(f *testing.F) {
	f.Add(make([]byte, block.MinIndexSize), uint64(0))
	f.Add(make([]byte, 120), uint64(1)<<63)
	f.Add([]byte("12345678"), ^uint64(0))
	f.Add(make([]byte, 129), uint64(0xff))
	f.Add(make([]byte, 255), uint64(0x1234567890))
	f.Fuzz(func(t *testing.T, blk []byte, nonce uint64) {
		if len(blk) < block.NonceSize || len(blk) > 8192 {
			t.Skip()
		}
		index := append(bytes.Clone(blk), make([]byte, (block.MinIndexSize-len(blk)%chunk+chunk)%chunk)...)
		// Runs of low nonce bits hold at least 256 nonces, aligned, so an
		// aligned group of 8 never straddles two.
		base := nonce &^ 7
		for _, b := range [][]byte{blk, index} {
			target := block.Sum(b)
			target[0] ^= 0xff // no lane can share 64 bits with it but by chance
			for _, k := range kernels() {
				it, mask, ids := runKernel(k, b, base, 1, target, 64)
				if it != 1 || mask != 0 {
					t.Fatalf("%s: iterations %d, mask %b", k.name, it, mask)
				}
				for l, id := range ids {
					if want := refID(withNonce(b, base+uint64(l))); id != want {
						t.Fatalf("%s, %d bytes, nonce %#x: got %v, want %v", k.name, len(b), base+uint64(l), id, want)
					}
				}
			}
		}
	})
}
