package pow

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/flowmail/flowmail/block"
)

// withNonce returns a copy of blk carrying nonce.
func withNonce(blk []byte, nonce uint64) []byte {
	b := bytes.Clone(blk)
	binary.BigEndian.PutUint64(b[len(b)-block.NonceSize:], nonce)
	return b
}

// kernelIDs runs k over iters iterations from nonce base, with a target
// no lane can meet (mask all ones, target chosen by the caller), and
// returns what the kernel reported: iterations run, hit mask and the IDs
// of the last iteration's lanes.
func kernelIDs(t *testing.T, k kernel, blk []byte, base, iters uint64, target block.ID, bits int) (uint64, uint64, []block.ID) {
	t.Helper()
	tl := newTail(blk)
	g := newGrinder(tl, k, target, bits)
	lb := tl.lowBits()
	var hi, lo uint64
	if lb < 64 {
		hi, lo = base>>lb, base&(1<<lb-1)
	} else {
		lo = base
	}
	g.prepare(hi)
	g.buf[pBase] = lo
	it, mask := g.run(&g.buf[0], iters)
	lanes := uint64(k.lanes)
	ids := make([]block.ID, lanes)
	for l := range lanes {
		for w := range uint64(4) {
			binary.BigEndian.PutUint64(ids[l][w*8:], g.buf[pOut+w*lanes+l])
		}
	}
	return it, mask, ids
}

// randomBase picks a nonce whose low varying bits leave room for iters
// iterations of lanes before the high bits change.
func randomBase(r *rand.Rand, blkLen, lanes int, iters uint64) uint64 {
	lb := uint(8 * ((blkLen-1)%8 + 1))
	need := iters * uint64(lanes)
	if lb == 64 {
		return r.Uint64() % (1<<63 - need)
	}
	span := uint64(1) << lb
	if need > span {
		panic("test asks for more nonces than a run holds")
	}
	return r.Uint64()>>lb<<lb | r.Uint64()%(span-need+1)
}

func TestKernelsMatchSHA512(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, k := range kernels() {
		t.Run(k.name, func(t *testing.T) {
			// Every residue mod 128 (one- and two-compression tails, nonces
			// straddling a chunk boundary), short and multi-chunk blocks.
			for n := 8; n < 8+3*chunk; n++ {
				blk := make([]byte, n)
				for i := range blk {
					blk[i] = byte(r.Uint32())
				}
				iters := uint64(1 + r.IntN(3))
				if n*8 > 64*8 || (n-1)%8 > 0 {
					iters = 1 + uint64(r.IntN(3))
				}
				base := randomBase(r, n, k.lanes, iters)
				var target block.ID
				for i := range target {
					target[i] = byte(r.Uint32())
				}
				it, mask, ids := kernelIDs(t, k, blk, base, iters, target, 64)
				if it != iters || mask != 0 {
					t.Fatalf("len %d: ran %d of %d iterations, mask %b against a random 64-bit target", n, it, iters, mask)
				}
				last := base + (iters-1)*uint64(k.lanes)
				for l, id := range ids {
					want := block.Sum(withNonce(blk, last+uint64(l)))
					if id != want {
						t.Fatalf("len %d (mod 128 = %d), nonce %#x, lane %d:\n got %x\nwant %x", n, n%chunk, last+uint64(l), l, id, want)
					}
				}
			}
		})
	}
}

func ExampleSolve_kernels() {
	for _, k := range kernels() {
		fmt.Println(k.name)
	}
}
