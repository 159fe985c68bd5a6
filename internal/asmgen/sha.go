package main

import "github.com/flowmail/flowmail/internal/sha512block"

// compress is one SHA-512 compression of the message words w(0) to w(15)
// into st (feed-forward included). With short, each round's sums are
// reassociated so that its new e and a are three operations from the
// previous round's e and a instead of four, at two more additions per
// round: that pays in the lanes kernels, whose rounds are all vector work
// and latency-bound; in the pow kernels the early rounds fold away. The message schedule is built just in
// time, a round ahead (w(t) is asked for then, so a kernel may load it
// then), so at most 17 schedule words are live; each round adds the next
// round's h, K and W before its Ch reads g (the next h), so Ch may
// overwrite g.
func compress(b *builder, st [8]Val, w func(int) Val, short bool) [8]Val {
	var s [80]Val
	sched := func(t int) {
		switch {
		case t < 16:
			s[t] = w(t)
		case t < 80:
			v1, v2 := s[t-2], s[t-15]
			s1 := b.xor3(b.rotr(v1, 19), b.rotr(v1, 61), b.shr(v1, 6))
			s0 := b.xor3(b.rotr(v2, 1), b.rotr(v2, 8), b.shr(v2, 7))
			s[t] = b.sum(s[t-16], s[t-7], s0, s1)
		}
	}
	a, bb, c, d, e, f, g, h := st[0], st[1], st[2], st[3], st[4], st[5], st[6], st[7]
	sched(0)
	pre := b.sum(h, imm(sha512block.K[0]), s[0])
	for t := range 80 {
		sched(t + 1)
		sig1 := b.xor3(b.rotr(e, 14), b.rotr(e, 18), b.rotr(e, 41))
		var next Val
		if t+1 < 80 {
			next = b.sum(g, imm(sha512block.K[t+1]), s[t+1])
		}
		if short {
			// e' = ((d + pre) + Ch) + Σ1, a' = ((pre + Ch) + Σ1 + Maj) + Σ0.
			dp := b.sum(d, pre)
			chv := b.ch(e, f, g)
			ep := b.sum(dp, chv)
			t1 := b.sum(b.sum(pre, chv), sig1)
			mj := b.sum(t1, b.maj(a, bb, c))
			sig0 := b.xor3(b.rotr(a, 28), b.rotr(a, 34), b.rotr(a, 39))
			h, g, f, e, d, c, bb, a = g, f, e, b.sum(ep, sig1), c, bb, a, b.sum(mj, sig0)
			pre = next
			continue
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
