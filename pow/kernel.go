package pow

import (
	"unsafe"

	"github.com/flowmail/flowmail/internal/sha512block"
)

//go:generate go run ../internal/asmgen -pkg pow -out .

// A kernel grinds one run of nonces that differ only in their low bytes
// (those in the block's last 64-bit word; see tail). It reads a params
// block laid out as in kernel_layout.go: the SHA-512/256 state before the
// final chunk, that chunk's words with the varying nonce bits zero, the
// constant second chunk when the padding needs one, the target's first
// word and the mask of bits that must match.
//
// run tries n iterations of lanes nonces each, lane l of iteration i
// trying low bits base+i·lanes+l, and stops at the first iteration where a
// lane's first ID word matches under the mask: it returns that iteration
// and the matching lanes (bit l for lane l), or n and 0. Either way the ID
// words of the last iteration run are at pOut: word w of lane l at
// pOut+w·lanes+l.
type kernel struct {
	name  string
	lanes int
	// v3 handles a varying word at index 3 of a one-compression final
	// chunk (index blocks, length ≡ 27 mod 128); any and anyTwo handle
	// the rest, with one and two compressions.
	v3, any, anyTwo func(p *uint64, n uint64) (iters, mask uint64)
}

// portable is the pure-Go kernel: one lane, any machine.
var portable = kernel{name: "go", lanes: 1, v3: goKernelOne, any: goKernelOne, anyTwo: goKernelTwo}

func goKernelOne(p *uint64, n uint64) (iters, mask uint64) { return goKernel(p, n, false) }
func goKernelTwo(p *uint64, n uint64) (iters, mask uint64) { return goKernel(p, n, true) }

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

// pick returns k's kernel for the layout t.
func (k kernel) pick(t *tail) func(p *uint64, n uint64) (iters, mask uint64) {
	switch {
	case t.two:
		return k.anyTwo
	case t.vary == 3:
		return k.v3
	}
	return k.any
}

// goKernel is the portable kernel; two says a second chunk follows. It
// finds the varying word from pSel, as the SIMD kernels for any layout do.
func goKernel(p *uint64, n uint64, two bool) (iters, mask uint64) {
	pp := unsafe.Slice(p, pWords)
	v := 0
	for i := range 16 {
		if pp[pSel+i] != 0 {
			v = i
		}
	}
	base, shift := pp[pBase], pp[pShift]
	target, m := pp[pTarget], pp[pMask]
	var id [8]uint64
	for i := range n {
		w := [16]uint64(pp[pMsg : pMsg+16])
		w[v] |= (base + i) << shift
		st := [8]uint64(pp[pState : pState+8])
		sha512block.Block(&st, &w)
		if two {
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
