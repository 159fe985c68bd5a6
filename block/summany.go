package block

import (
	"encoding/binary"
	"fmt"

	"github.com/flowmail/flowmail/block/internal/sha512x"
)

// SumMany sets ids[i] to Sum(blocks[i]) for every i; len(ids) must be
// len(blocks). Where the CPU has them it hashes blocks side by side in
// SIMD lanes (block/internal/sha512x: 8 with AVX-512, about four times
// the rate of one-at-a-time hashing once the lanes are full); with too few
// blocks to fill lanes profitably, or without the instructions, it calls
// Sum for each.
func SumMany(blocks [][]byte, ids []ID) {
	if len(ids) != len(blocks) {
		panic(fmt.Sprintf("block: SumMany of %d blocks into %d IDs", len(blocks), len(ids)))
	}
	sumMany(sha512x.Best(), blocks, ids)
}

// Lanes is how many blocks SumMany hashes side by side on this machine:
// 8 with AVX-512, 4 with AVX2, 1 without a SIMD kernel (other
// architectures, the purego build tag). Callers that gather blocks for
// SumMany gain nothing from batches larger than this.
func Lanes() int {
	if k := sha512x.Best(); k != nil {
		return k.Lanes
	}
	return 1
}

// chunk is the SHA-512 block size.
const chunk = sha512x.ChunkSize

// A lane of the kernel takes one block through three steps: its whole
// chunks straight from the block, its last bytes padded in the lane's
// tail buffer, and the outer hash of the 32-byte inner digest (one
// padded chunk, in the same buffer).
const (
	stepBody = iota
	stepTail
	stepOuter
)

type lane struct {
	blk  int    // index of the block in the lane, -1 when idle
	step int    // what src holds
	src  []byte // chunks still to compress in this step
	tail []byte // the padded tail, for after stepBody
}

// sumMany is SumMany with kernel k (nil: none). Lanes are refilled as
// soon as their block is done, so blocks of any mix of lengths share the
// kernel; each pass compresses as many chunks as every busy lane has left
// in its current step. An idle lane re-reads a busy lane's chunks and its
// result is ignored.
func sumMany(k *sha512x.Kernel, blocks [][]byte, ids []ID) {
	next := 0
	if k != nil && len(blocks) >= k.MinBatch {
		next = sumLanes(k, blocks, ids)
	}
	for i := next; i < len(blocks); i++ {
		ids[i] = Sum(blocks[i])
	}
}

// sumLanes hashes blocks in k's lanes until every lane is idle with fewer
// than k.MinBatch blocks left, and returns the index of the first block
// it left.
func sumLanes(k *sha512x.Kernel, blocks [][]byte, ids []ID) (next int) {
	var st sha512x.State
	st.Init(k)
	var lanes [sha512x.MaxLanes]lane
	var bufs [sha512x.MaxLanes][2 * chunk]byte
	var src [sha512x.MaxLanes][]byte
	for l := range k.Lanes {
		lanes[l].blk = -1
	}
	for {
		idle := true
		for _, ln := range lanes[:k.Lanes] {
			idle = idle && ln.blk < 0
		}
		if idle && len(blocks)-next < k.MinBatch {
			return next
		}
		busy, n := -1, 0
		for l := range k.Lanes {
			if lanes[l].blk < 0 && next < len(blocks) {
				lanes[l] = start(&st, l, next, blocks[next], &bufs[l])
				next++
			}
			if lanes[l].blk < 0 {
				continue
			}
			if c := len(lanes[l].src) / chunk; busy < 0 || c < n {
				n = c
			}
			busy = l
		}
		for l := range k.Lanes {
			src[l] = lanes[l].src
			if lanes[l].blk < 0 {
				src[l] = lanes[busy].src
			}
		}
		st.Compress(src[:k.Lanes], n)
		for l := range k.Lanes {
			if lanes[l].blk < 0 {
				continue
			}
			lanes[l].src = lanes[l].src[n*chunk:]
			if len(lanes[l].src) == 0 {
				lanes[l] = lanes[l].advance(&st, l, &bufs[l], ids)
			}
		}
	}
}

// start puts block i, b, in lane l, padding its tail into buf. (start and
// advance return the lane rather than write through a pointer, so that
// the buffers stay on sumLanes's stack.)
func start(st *sha512x.State, l, i int, b []byte, buf *[2 * chunk]byte) lane {
	body := len(b) / chunk * chunk
	st.Reset(l)
	tail := pad(buf, b[body:], uint64(len(b)))
	if body == 0 {
		return lane{blk: i, step: stepTail, src: tail}
	}
	return lane{blk: i, step: stepBody, src: b[:body], tail: tail}
}

// advance returns lane l's next step once the current one is done.
func (ln lane) advance(st *sha512x.State, l int, buf *[2 * chunk]byte, ids []ID) lane {
	switch ln.step {
	case stepBody:
		return lane{blk: ln.blk, step: stepTail, src: ln.tail}
	case stepTail:
		inner := st.Sum256(l)
		st.Reset(l)
		return lane{blk: ln.blk, step: stepOuter, src: pad(buf, inner[:], uint64(len(inner)))}
	}
	ids[ln.blk] = st.Sum256(l)
	return lane{blk: -1}
}

// pad writes the last bytes of a message of n bytes in all, fewer than a
// chunk, with SHA-512 padding (0x80, zeros, the 128-bit bit length) into
// buf and returns the one or two chunks they fill.
func pad(buf *[2 * chunk]byte, last []byte, n uint64) []byte {
	size := chunk
	if len(last)+17 > chunk {
		size = 2 * chunk
	}
	p := buf[:size]
	copy(p, last)
	p[len(last)] = 0x80
	clear(p[len(last)+1 : size-8])
	binary.BigEndian.PutUint64(p[size-8:], n*8)
	return p
}
