package pow

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/internal/testseed"
)

// withNonce returns a copy of blk carrying nonce.
func withNonce(blk []byte, nonce uint64) []byte {
	b := bytes.Clone(blk)
	binary.BigEndian.PutUint64(b[len(b)-block.NonceSize:], nonce)
	return b
}

// refID is the block ID computed the long way, straight from crypto/sha512.
func refID(blk []byte) block.ID {
	inner := sha512.Sum512_256(blk)
	return sha512.Sum512_256(inner[:])
}

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func randomID(r *rand.Rand) (id block.ID) {
	copy(id[:], randomBytes(r, len(id)))
	return id
}

// runKernel runs the code k picks for blk's layout directly (k's own, or
// the portable kernel when k has none for it): iters iterations from
// nonce base, which must leave room in its run of low bits. It returns
// what the code reports and the IDs it left for the last iteration's
// lanes, one per lane.
func runKernel(k kernel, blk []byte, base, iters uint64, target block.ID, bits int) (uint64, uint64, []block.ID) {
	t := newTail(blk)
	g := newGrinder(t, k, target, bits)
	var hi uint64
	lo := base
	if lb := t.lowBits(); lb < 64 {
		hi, lo = base>>lb, base&(1<<lb-1)
	}
	g.prepare(hi)
	g.buf[pBase] = lo
	it, mask := g.run(&g.buf[0], iters)
	lanes := uint64(g.lanes)
	ids := make([]block.ID, lanes)
	for l := range lanes {
		for w := range uint64(4) {
			binary.BigEndian.PutUint64(ids[l][w*8:], g.buf[pOut+w*lanes+l])
		}
	}
	return it, mask, ids
}

// lanesFor is how many lanes k grinds blocks of n bytes in.
func lanesFor(k kernel, n int) uint64 {
	_, lanes := k.pick(layoutOf(n))
	return uint64(lanes)
}

// roomyBase picks a nonce whose run of low bits has room for need more.
func roomyBase(r *rand.Rand, blkLen int, need uint64) uint64 {
	lb := uint(8 * ((blkLen-1)%8 + 1))
	if lb == 64 {
		return r.Uint64() // lanes wrap past 2^64 exactly as nonces do
	}
	span := uint64(1) << lb
	return r.Uint64()>>lb<<lb | r.Uint64()%(span-need+1)
}

// TestKernelsMatchSHA512 runs the code each kernel this machine has picks
// (SIMD for index blocks, portable for the rest) against crypto/sha512 on
// random blocks of every length mod 128 (final chunks of one and two
// compressions, nonces straddling chunk boundaries, varying words at
// every index), from random nonces, for one to three iterations.
func TestKernelsMatchSHA512(t *testing.T) {
	r := testseed.Rand(t)
	lengths := []int{block.MinIndexSize, block.MinIndexSize + 128*7, 2000, 4096}
	for n := 8; n < 8+3*chunk; n++ {
		lengths = append(lengths, n)
	}
	for _, k := range kernels() {
		t.Run(k.name, func(t *testing.T) {
			for _, n := range lengths {
				blk := randomBytes(r, n)
				iters := uint64(1 + r.IntN(3))
				lanes := lanesFor(k, n)
				base := roomyBase(r, n, iters*lanes)
				// A random 64-bit prefix: no lane meets it (2^-64 each).
				target := randomID(r)
				it, mask, ids := runKernel(k, blk, base, iters, target, 64)
				if it != iters || mask != 0 {
					t.Fatalf("len %d: ran %d of %d iterations, mask %b, against a random 64-bit target", n, it, iters, mask)
				}
				last := base + (iters-1)*lanes
				for l, id := range ids {
					nonce := last + uint64(l)
					if want := refID(withNonce(blk, nonce)); id != want {
						t.Fatalf("len %d (%d mod 128), nonce %#x, lane %d:\n got %v\nwant %v", n, n%chunk, nonce, l, id, want)
					}
				}
			}
		})
	}
}

// TestKernelsStopAtFirstMatch checks the in-register target test: with a
// short prefix several lanes match, and the kernel must stop at the first
// iteration holding one and flag exactly the lanes that match.
func TestKernelsStopAtFirstMatch(t *testing.T) {
	r := testseed.Rand(t)
	for _, k := range kernels() {
		t.Run(k.name, func(t *testing.T) {
			for range 200 {
				n := block.MinIndexSize + 128*r.IntN(3)
				if r.IntN(2) == 0 {
					n = 8 + r.IntN(3*chunk)
				}
				blk := randomBytes(r, n)
				bits := r.IntN(5)
				target := randomID(r)
				const iters = 16
				lanes := lanesFor(k, n)
				base := roomyBase(r, n, iters*lanes)
				it, mask, ids := runKernel(k, blk, base, iters, target, bits)
				// The reference: the first iteration with a matching lane.
				wantIt, wantMask := uint64(iters), uint64(0)
				for i := range uint64(iters) {
					for l := range lanes {
						if block.CommonPrefixLen(refID(withNonce(blk, base+i*lanes+l)), target) >= bits {
							wantMask |= 1 << l
						}
					}
					if wantMask != 0 {
						wantIt = i
						break
					}
				}
				if it != wantIt || mask != wantMask {
					t.Fatalf("len %d, %d bits: stopped at iteration %d with lanes %b, want %d with %b", n, bits, it, mask, wantIt, wantMask)
				}
				if it < iters {
					for l, id := range ids {
						if want := refID(withNonce(blk, base+it*lanes+uint64(l))); id != want {
							t.Fatalf("lane %d of the matching iteration: got %v, want %v", l, id, want)
						}
					}
				}
			}
		})
	}
}

// firstValid is the reference search: the first nonce of count from base
// whose block meets the target.
func firstValid(blk []byte, base, count uint64, target block.ID, bits int) (uint64, bool) {
	for i := range count {
		if Verify(withNonce(blk, base+i), target, bits) {
			return base + i, true
		}
	}
	return 0, false
}

// TestSearchFindsFirstNonce checks the grinder over ranges that start
// anywhere, cross runs of low nonce bits (one low byte: runs of 256),
// end raggedly, and wrap past 2^64: it must return exactly the first
// valid nonce, which means it tried every nonce before it, in order.
func TestSearchFindsFirstNonce(t *testing.T) {
	r := testseed.Rand(t)
	for _, k := range kernels() {
		t.Run(k.name, func(t *testing.T) {
			for range 60 {
				// Lengths ≡ 1 mod 8 leave one varying byte per run.
				n := []int{25, 17 + 128, 129, block.MinIndexSize, 120, 128, 136}[r.IntN(7)]
				blk := randomBytes(r, n)
				bits := 4 + r.IntN(6)
				target := randomID(r)
				count := uint64(1 + r.IntN(1500))
				base := r.Uint64()
				if r.IntN(4) == 0 {
					base = math.MaxUint64 - uint64(r.IntN(700)) // wraps past 2^64
				}
				want, wantOK := firstValid(blk, base, count, target, bits)
				g := newGrinder(newTail(blk), k, target, bits)
				got, tried, ok := g.search(base, count)
				if ok != wantOK || got != want {
					t.Fatalf("len %d, %d bits, %d nonces from %#x: got %#x (found %v), want %#x (found %v)", n, bits, count, base, got, ok, want, wantOK)
				}
				wantTried := count
				if ok {
					wantTried = want - base + 1
				}
				if tried != wantTried {
					t.Fatalf("reported %d nonces tried, want %d", tried, wantTried)
				}
			}
		})
	}
}

// TestSearchChecksBitsBeyondTheFirstWord: the kernels test only the first
// 64 bits; the grinder must check the rest and reject a lane that matches
// only those.
func TestSearchChecksBitsBeyondTheFirstWord(t *testing.T) {
	r := testseed.Rand(t)
	blk := randomBytes(r, block.MinIndexSize)
	const base, at = 1000, 1013
	id := refID(withNonce(blk, at))
	for _, k := range kernels() {
		t.Run(k.name, func(t *testing.T) {
			// The exact ID at 256 bits is found.
			g := newGrinder(newTail(blk), k, id, 256)
			if got, _, ok := g.search(base, 64); !ok || got != at {
				t.Fatalf("target = ID of nonce %d at 256 bits: got %d (found %v)", at, got, ok)
			}
			// The same ID with bit 64 flipped matches 64 bits, not 65.
			near := id
			near[8] ^= 0x80
			g = newGrinder(newTail(blk), k, near, 65)
			if got, _, ok := g.search(base, 64); ok {
				t.Fatalf("a 64-bit match accepted at 65 bits: nonce %d", got)
			}
			g = newGrinder(newTail(blk), k, near, 64)
			if got, _, ok := g.search(base, 64); !ok || got != at {
				t.Fatalf("64 bits against an ID sharing 64 with nonce %d's: got %d (found %v)", at, got, ok)
			}
		})
	}
}

// TestSearchAcrossRunBoundaries: the only valid nonce (the target is its
// full ID) sits at every position around a boundary between runs of low
// nonce bits, including the ragged ends the lanes do not fill and the
// wrap past 2^64; the search must find exactly it.
func TestSearchAcrossRunBoundaries(t *testing.T) {
	r := testseed.Rand(t)
	// Low nonce bytes per run: 1, 2, 3 (index blocks), 8 (wraps at 2^64).
	for _, n := range []int{25, 130, block.MinIndexSize, 136} {
		blk := randomBytes(r, n)
		lb := newTail(blk).lowBits()
		boundary := uint64(0) // 2^64 for 8 low bytes
		if lb < 64 {
			boundary = (r.Uint64()>>lb + 1) << lb
		}
		for _, k := range kernels() {
			for d := -10; d < 10; d++ {
				at := boundary + uint64(d)
				id := refID(withNonce(blk, at))
				g := newGrinder(newTail(blk), k, id, MaxBits)
				// 51 before: 6 groups of 8 and a ragged 3 before the boundary.
				if got, _, ok := g.search(boundary-51, 102); !ok || got != at {
					t.Fatalf("%s, %d bytes, only valid nonce %#x: got %#x (found %v)", k.name, n, at, got, ok)
				}
			}
		}
	}
}

// TestFastAndPortablePathsAgree runs each SIMD kernel this machine has
// beside the portable one on every length it has code for, index blocks
// first: the IDs of every lane, and the nonce a search returns and the
// count it reports, must be the same.
func TestFastAndPortablePathsAgree(t *testing.T) {
	ks := simdKernels()
	if len(ks) == 0 {
		t.Skip("no SIMD kernel on this machine")
	}
	r := testseed.Rand(t)
	for _, k := range ks {
		t.Run(k.name, func(t *testing.T) {
			var lengths []int
			for j := range 8 {
				lengths = append(lengths, block.MinIndexSize+chunk*j)
			}
			for n := 8; n < 8+3*chunk; n++ {
				if lanesFor(k, n) == uint64(k.lanes) {
					lengths = append(lengths, n)
				}
			}
			for i := range 10 * len(lengths) {
				n := lengths[i%len(lengths)]
				if got := lanesFor(k, n); got != uint64(k.lanes) {
					t.Fatalf("block of %d bytes: %d lanes, want %s's %d", n, got, k.name, k.lanes)
				}
				blk := randomBytes(r, n)
				target := randomID(r)

				// One iteration: lane l's ID is the portable kernel's for
				// nonce base+l.
				base := roomyBase(r, n, uint64(k.lanes))
				_, _, fast := runKernel(k, blk, base, 1, target, 64)
				for l, id := range fast {
					_, _, slow := runKernel(portable, blk, base+uint64(l), 1, target, 64)
					if id != slow[0] {
						t.Fatalf("len %d, nonce %#x: %s lane %d gives %v, portable %v", n, base+uint64(l), k.name, l, id, slow[0])
					}
				}

				// A search, sometimes across a run of low nonce bits or 2^64.
				bits := r.IntN(11)
				count := uint64(1 + r.IntN(3000))
				from := r.Uint64()
				switch r.IntN(3) {
				case 0:
					from = 1<<newTail(blk).lowBits() - uint64(r.IntN(1000))
				case 1:
					from = -uint64(1 + r.IntN(1000))
				}
				fn, ft, fok := newGrinder(newTail(blk), k, target, bits).search(from, count)
				pn, pt, pok := newGrinder(newTail(blk), portable, target, bits).search(from, count)
				if fn != pn || ft != pt || fok != pok {
					t.Fatalf("len %d, %d bits, %d nonces from %#x: %s found %#x (%v) after %d, portable %#x (%v) after %d",
						n, bits, count, from, k.name, fn, fok, ft, pn, pok, pt)
				}
			}
		})
	}
}
