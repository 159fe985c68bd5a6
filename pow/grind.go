package pow

import (
	"encoding/binary"
	"unsafe"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/internal/sha512block"
)

// tail is where the nonce sits in a block, as the kernels see it. The
// nonce's low bytes, those in the block's last 64-bit word, vary inside a
// kernel call; its high bytes change only between runs of 2^(8·low)
// nonces, so the chunks holding them are hashed once per run.
type tail struct {
	layout           // of chunk fin
	blk    []byte    // the block; nonce bytes are ignored
	low    int       // nonce bytes in the block's last word, 1 to 8
	first  int       // the first chunk holding a nonce byte
	fin    int       // the chunk holding the block's last byte
	pre    [8]uint64 // state after the chunks before first
}

func newTail(blk []byte) *tail {
	n := len(blk)
	t := &tail{
		layout: layoutOf(n),
		blk:    blk,
		low:    (n-1)%8 + 1,
		first:  (n - block.NonceSize) / chunk,
		fin:    (n - 1) / chunk,
		pre:    sha512block.IV256,
	}
	for c := range t.first {
		w := sha512block.Words(blk[c*chunk:])
		sha512block.Block(&t.pre, &w)
	}
	return t
}

// lowBits is the width of the varying nonce bits: 8 to 64.
func (t *tail) lowBits() uint { return uint(8 * t.low) }

// grinder searches nonces for one worker.
type grinder struct {
	t     *tail
	run   kernelFunc // the chosen kernel's code for t's layout
	lanes int        // how many lanes run runs
	// tailRun is the portable kernel for the layout, for runs shorter
	// than run's lanes.
	tailRun kernelFunc
	buf     []uint64 // the params block, 64-byte aligned, and the kernel's scratch
	last    []byte   // padded chunks first..fin(+1), nonce high bytes filled in
	hi      uint64   // the high nonce bits last prepared
	ready   bool
	target  block.ID
	bits    int
}

func newGrinder(t *tail, k kernel, target block.ID, bits int) *grinder {
	raw := make([]uint64, kernelWords+8)
	skip := (64 - int(uintptr(unsafe.Pointer(&raw[0]))%64)) % 64 / 8
	g := &grinder{t: t, buf: raw[skip : skip+kernelWords], target: target, bits: bits}
	g.run, g.lanes = k.pick(t.layout)
	g.tailRun, _ = portable.pick(t.layout)
	n := len(t.blk)
	start := t.first * chunk
	end := (n + 17 + chunk - 1) / chunk * chunk
	g.last = make([]byte, end-start)
	copy(g.last, t.blk[start:])
	g.last[n-start] = 0x80
	binary.BigEndian.PutUint64(g.last[len(g.last)-8:], uint64(n)*8)

	p := g.buf
	p[pShift] = uint64(8 * (7 - (n-1)%8))
	p[pTarget] = binary.BigEndian.Uint64(target[:8])
	if bits < 64 {
		p[pMask] = ^uint64(0) << (64 - bits) // bits 0: every ID matches
	} else {
		p[pMask] = ^uint64(0) // longer prefixes are checked in hit
	}
	return g
}

// prepare sets the nonce's high bits and hashes what depends on them.
func (g *grinder) prepare(hi uint64) {
	t, p := g.t, g.buf
	n := len(t.blk)
	var nonce [8]byte
	if t.low < 8 {
		binary.BigEndian.PutUint64(nonce[:], hi<<t.lowBits())
	}
	copy(g.last[n-block.NonceSize-t.first*chunk:], nonce[:])
	st := t.pre
	c := 0
	for ; c < t.fin-t.first; c++ {
		w := sha512block.Words(g.last[c*chunk:])
		sha512block.Block(&st, &w)
	}
	copy(p[pState:pState+8], st[:])
	w := sha512block.Words(g.last[c*chunk:])
	copy(p[pMsg:pMsg+16], w[:])
	if t.two {
		w := sha512block.Words(g.last[(c+1)*chunk:])
		copy(p[pMsg2:pMsg2+16], w[:])
	}
	g.hi, g.ready = hi, true
}

// search tries nonces base, base+1, ... (mod 2^64), count of them, and
// returns the first that meets the target and how many it tried.
func (g *grinder) search(base, count uint64) (nonce, tried uint64, found bool) {
	t := g.t
	for count > 0 {
		var hi, lo, room uint64
		if t.low == 8 {
			lo, room = base, -base // 0: the whole nonce space
		} else {
			hi, lo = base>>t.lowBits(), base&(1<<t.lowBits()-1)
			room = 1<<t.lowBits() - lo
		}
		n := count
		if room != 0 && room < n {
			n = room
		}
		if !g.ready || hi != g.hi {
			g.prepare(hi)
		}
		for done := uint64(0); done < n; {
			run, lanes := g.run, uint64(g.lanes)
			iters := (n - done) / lanes
			if iters == 0 { // a ragged end: one lane at a time
				run, lanes, iters = g.tailRun, 1, n-done
			}
			g.buf[pBase] = lo + done
			it, mask := run(&g.buf[0], iters)
			if mask == 0 {
				done += iters * lanes
				continue
			}
			for l := range lanes {
				if mask>>l&1 == 1 && g.hit(l, lanes) {
					k := done + it*lanes + l
					return base + k, tried + k + 1, true
				}
			}
			done += (it + 1) * lanes
		}
		base += n
		count -= n
		tried += n
	}
	return 0, tried, false
}

// hit checks a lane's whole ID: the kernels test only its first word.
func (g *grinder) hit(lane, lanes uint64) bool {
	var id block.ID
	for w := range uint64(4) {
		binary.BigEndian.PutUint64(id[w*8:], g.buf[pOut+w*lanes+lane])
	}
	return block.CommonPrefixLen(id, g.target) >= g.bits
}
