package main

import "github.com/flowmail/flowmail/pow/internal/sha512block"

// Params block layout, in 64-bit words, shared with the Go side through
// the generated stub file.
const (
	pState  = 0  // [8] SHA-512/256 state before the nonce's final chunk
	pMsg    = 8  // [16] that chunk, padded, with the varying nonce bits zero
	pMsg2   = 24 // [16] the constant second chunk, when the padding needs one
	pSel    = 40 // [16] all ones at the varying word, zero elsewhere (generic kernels)
	pBase   = 56 // low nonce bits of lane 0, first iteration
	pShift  = 57 // left shift that puts the low nonce bits in their word
	pTarget = 58 // first word of the target ID
	pMask   = 59 // leading bits of the first ID word that must match
	pOut    = 64 // [4][lanes] ID words of the last iteration run
	pScr    = 96 // scratch: per-call values and spills
)

// spec names a kernel: which word of the final chunk holds the varying
// nonce bits (-1: chosen at run time through pSel), and whether a
// constant second chunk follows (the padding did not fit).
type spec struct {
	name string
	v    int
	two  bool
}

var specs = []spec{
	{name: "V3", v: 3},                 // index blocks: length ≡ 27 (mod 128)
	{name: "Any", v: -1},               // any length whose padding fits the nonce's chunk
	{name: "AnyTwo", v: -1, two: true}, // padding spills into a second chunk
}

// compress is one SHA-512 compression of w into st (feed-forward
// included). The message schedule is built just in time, a round ahead,
// so at most 17 schedule words are live; each round adds the next round's
// h, K and W before its Ch reads g (the next h), so Ch may overwrite g.
func compress(b *builder, st [8]Val, w [16]Val) [8]Val {
	var s [80]Val
	copy(s[:], w[:])
	sched := func(t int) {
		if t >= 16 && t < 80 {
			v1, v2 := s[t-2], s[t-15]
			s1 := b.xor3(b.rotr(v1, 19), b.rotr(v1, 61), b.shr(v1, 6))
			s0 := b.xor3(b.rotr(v2, 1), b.rotr(v2, 8), b.shr(v2, 7))
			s[t] = b.sum(s[t-16], s[t-7], s0, s1)
		}
	}
	a, bb, c, d, e, f, g, h := st[0], st[1], st[2], st[3], st[4], st[5], st[6], st[7]
	pre := b.sum(h, imm(sha512block.K[0]), s[0])
	for t := range 80 {
		sched(t + 1)
		sig1 := b.xor3(b.rotr(e, 14), b.rotr(e, 18), b.rotr(e, 41))
		var next Val
		if t+1 < 80 {
			next = b.sum(g, imm(sha512block.K[t+1]), s[t+1])
		}
		chv := b.ch(e, f, g)
		t1 := b.sum(pre, chv, sig1)
		sig0 := b.xor3(b.rotr(a, 28), b.rotr(a, 34), b.rotr(a, 39))
		t2 := b.sum(b.maj(a, bb, c), sig0)
		h, g, f, e, d, c, bb, a = g, f, e, b.sum(d, t1), c, bb, a, b.sum(t1, t2)
		pre = next
	}
	out := [8]Val{a, bb, c, d, e, f, g, h}
	for i := range out {
		out[i] = b.sum(st[i], out[i])
	}
	return out
}

// build describes one kernel iteration: the lanes' IDs (four words each)
// for nonce lanes, from the params block. The first ID word is also the
// one the loop tests against the target.
func build(sp spec) (*builder, [4]Val) {
	b := &builder{}
	var st [8]Val
	for i := range st {
		st[i] = b.param(pState + i)
	}
	nonce := b.nonceLanes()
	var m [16]Val
	for i := range m {
		switch {
		case sp.v < 0:
			m[i] = b.or(b.and(nonce, b.param(pSel+i)), b.param(pMsg+i))
		case i == sp.v:
			m[i] = b.or(nonce, b.param(pMsg+i))
		default:
			m[i] = b.param(pMsg + i)
		}
	}
	inner := compress(b, st, m)
	if sp.two {
		var m2 [16]Val
		for i := range m2 {
			m2[i] = b.param(pMsg2 + i)
		}
		inner = compress(b, inner, m2)
	}
	// The outer hash of the 32-byte inner digest: one chunk, padding and
	// length fixed.
	var o [16]Val
	copy(o[:4], inner[:4])
	o[4] = imm(1 << 63)
	for i := 5; i < 15; i++ {
		o[i] = imm(0)
	}
	o[15] = imm(256)
	var iv [8]Val
	for i := range iv {
		iv[i] = imm(sha512block.IV256[i])
	}
	id := compress(b, iv, o)
	return b, [4]Val{id[0], id[1], id[2], id[3]}
}
