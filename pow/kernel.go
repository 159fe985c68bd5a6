package pow

import (
	"unsafe"

	"github.com/flowmail/flowmail/internal/sha512block"
)

//go:generate go run ../internal/asmgen -pkg pow -out .

// chunk is the SHA-512 block size.
const chunk = 128

// A kernelFunc grinds one run of nonces that differ only in their low
// bytes (those in the block's last 64-bit word; see tail). It reads a
// params block laid out as in kernel_layout.go: the SHA-512/256 state
// before the final chunk, that chunk's words with the varying nonce bits
// zero, the constant second chunk when the padding needs one, the
// target's first word and the mask of bits that must match.
//
// It tries n iterations of lanes nonces each, lane l of iteration i
// trying low bits base+i·lanes+l, and stops at the first iteration where
// a lane's first ID word matches under the mask: it returns that
// iteration and the matching lanes (bit l for lane l), or n and 0. Either
// way the ID words of the last iteration run are at pOut: word w of lane
// l at pOut+w·lanes+l.
type kernelFunc func(p *uint64, n uint64) (iters, mask uint64)

// layout is all of a block's length a kernel's code depends on.
type layout struct {
	vary int  // index of the block's last word within its final chunk
	two  bool // the padding needs a chunk after the final one
}

func layoutOf(n int) layout {
	// 0x80 and the 16-byte length follow the message.
	return layout{vary: (n - 1) % chunk / 8, two: (n-1)%chunk+1+17 > chunk}
}

// A kernel is a set of kernelFuncs running the same number of lanes. The
// SIMD ones (kernel_amd64.go) exist only for the layouts of the block
// lengths the protocol grinds, listed in one table in internal/asmgen;
// blocks of other lengths grind on the portable kernel.
type kernel struct {
	name  string
	lanes int
	fast  map[layout]kernelFunc
}

// portable is the pure-Go kernel: one lane, any machine, any length.
var portable = kernel{name: "go", lanes: 1}

// kernels lists the kernels this machine can run, fastest first; the
// portable one is always last.
func kernels() []kernel { return append(simdKernels(), portable) }

func kernelByName(name string) (kernel, bool) {
	for _, k := range kernels() {
		if k.name == name {
			return k, true
		}
	}
	return kernel{}, false
}

// pick returns k's code for layout l and how many lanes it runs: the
// portable kernel, one lane, when k has none for l.
func (k kernel) pick(l layout) (kernelFunc, int) {
	if f, ok := k.fast[l]; ok {
		return f, k.lanes
	}
	return func(p *uint64, n uint64) (iters, mask uint64) { return goKernel(p, n, l) }, 1
}

// goKernel is the portable kernel, for any layout l.
func goKernel(p *uint64, n uint64, l layout) (iters, mask uint64) {
	pp := unsafe.Slice(p, pWords)
	base, shift := pp[pBase], pp[pShift]
	target, m := pp[pTarget], pp[pMask]
	var id [8]uint64
	for i := range n {
		w := [16]uint64(pp[pMsg : pMsg+16])
		w[l.vary] |= (base + i) << shift
		st := [8]uint64(pp[pState : pState+8])
		sha512block.Block(&st, &w)
		if l.two {
			w2 := [16]uint64(pp[pMsg2 : pMsg2+16])
			sha512block.Block(&st, &w2)
		}
		// The outer hash: the 32-byte inner digest, padded.
		o := [16]uint64{st[0], st[1], st[2], st[3], 1 << 63, 15: 256}
		id = sha512block.IV256
		sha512block.Block(&id, &o)
		if (id[0]^target)&m == 0 {
			copy(pp[pOut:pOut+4], id[:4])
			return i, 1
		}
	}
	if n > 0 {
		copy(pp[pOut:pOut+4], id[:4])
	}
	return n, 0
}
