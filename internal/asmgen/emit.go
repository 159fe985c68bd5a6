package main

import (
	"fmt"
	"math"
	"strings"
)

// backend is an instruction set: AVX-512 (8 lanes in ZMM registers, with
// rotates, three-input logic and broadcast memory operands) or AVX2 (4
// lanes in YMM registers, rotates built from shifts).
type backend struct {
	name   string
	lanes  int
	vbytes int
	nregs  int
	reg    string // register prefix
	avx512 bool
}

var backends = []backend{
	{name: "AVX512", lanes: 8, vbytes: 64, nregs: 32, reg: "Z", avx512: true},
	{name: "AVX2", lanes: 4, vbytes: 32, nregs: 16, reg: "Y"},
}

// The params pointer lives in DI, the iteration count in SI and the
// iteration counter in CX for the whole kernel.
const paramsReg = "DI"

// emitter turns one kernel's nodes into Go assembly: the uni nodes into a
// scalar prologue run once per call, the vec nodes into the loop body, with
// a register allocator for straight-line code that spills the value used
// furthest in the future (Belady) when registers run out. The last
// register is reserved for the kernel's loop-carried vec input (the nonce
// lanes) or its loop-invariant one (the message offsets); what surrounds
// the loop body is each kernel's own (pow.go, lanes.go).
type emitter struct {
	be      backend
	b       *builder
	roots   []Val // what the loop body computes, live to its end
	consts  *constTable
	pro     strings.Builder
	body    strings.Builder
	scr     int // next free scratch byte offset from the params pointer
	vecs    []*node
	slot    map[*node]int   // uni: scalar slot (or params word)
	immS    map[uint64]int  // imm used by vec code: scalar slot
	bcast   map[Val]int     // AVX2: 32-byte broadcast slot of a uni or imm value
	uses    map[*node][]int // vec: body positions that read it
	pos     int             // current body position
	regOf   map[*node]int   // vec: register, absent if none
	valIn   []*node         // register contents
	pin     []bool          // registers the current node reads or writes
	spill   map[*node]int   // vec: spill slot
	free    []int           // released spill slots
	later   []int           // spill slots to release after the current node
	nreg    int             // the reserved register
	spills  int
	reloads int
}

// newEmitter prepares the loop body computing roots; scratch starts at
// byte scr of the params block. With consts, imm values the vector code
// reads come from that read-only table instead of scratch slots the
// prologue fills.
func newEmitter(be backend, b *builder, roots []Val, scr int, consts *constTable) *emitter {
	markLive(roots)
	e := &emitter{
		be: be, b: b, roots: roots, consts: consts,
		scr:   scr,
		slot:  map[*node]int{},
		immS:  map[uint64]int{},
		bcast: map[Val]int{},
		uses:  map[*node][]int{},
		regOf: map[*node]int{},
		valIn: make([]*node, be.nregs),
		pin:   make([]bool, be.nregs),
		spill: map[*node]int{},
		nreg:  be.nregs - 1,
	}
	for _, n := range b.nodes {
		if n.live && n.kind == kVec && n.op != opInput {
			e.vecs = append(e.vecs, n)
		}
	}
	for i, n := range e.vecs {
		for _, a := range n.args {
			if a.kind() == kVec {
				e.uses[a.n] = append(e.uses[a.n], i)
			}
		}
	}
	for _, o := range roots {
		e.uses[o.n] = append(e.uses[o.n], len(e.vecs))
	}
	return e
}

func p(w *strings.Builder, format string, args ...any) {
	fmt.Fprintf(w, "\t"+format+"\n", args...)
}

func (e *emitter) alloc(size, align int) int {
	e.scr = (e.scr + align - 1) / align * align
	off := e.scr
	e.scr += size
	return off
}

func mem(off int) string { return fmt.Sprintf("%d(%s)", off, paramsReg) }

// prologue computes every uni node once, in scalar code, into scratch
// slots, and lays out the constants the vector code reads.
func (e *emitter) prologue() {
	w := &e.pro
	scalar := []string{"R8", "R9", "R10"}
	src := func(v Val, k int) string {
		if v.n == nil {
			p(w, "MOVQ $0x%x, %s", v.imm, scalar[k])
			return scalar[k]
		}
		return mem(e.slot[v.n])
	}
	for _, n := range e.b.nodes {
		if !n.live || n.kind != kUni {
			continue
		}
		if n.op == opInput {
			e.slot[n] = n.param * 8
			continue
		}
		a := make([]string, len(n.args))
		for i, x := range n.args {
			a[i] = src(x, i)
		}
		switch n.op {
		case opAdd, opOr, opXor:
			p(w, "MOVQ %s, AX", a[0])
			p(w, "%sQ %s, AX", strings.ToUpper(n.op.String()), a[1])
		case opXor3:
			p(w, "MOVQ %s, AX", a[0])
			p(w, "XORQ %s, AX", a[1])
			p(w, "XORQ %s, AX", a[2])
		case opCh: // ((y ^ z) & x) ^ z
			p(w, "MOVQ %s, AX", a[1])
			p(w, "XORQ %s, AX", a[2])
			p(w, "ANDQ %s, AX", a[0])
			p(w, "XORQ %s, AX", a[2])
		case opMaj: // ((x ^ y) & (y ^ z)) ^ y
			p(w, "MOVQ %s, AX", a[0])
			p(w, "XORQ %s, AX", a[1])
			p(w, "MOVQ %s, DX", a[1])
			p(w, "XORQ %s, DX", a[2])
			p(w, "ANDQ DX, AX")
			p(w, "XORQ %s, AX", a[1])
		case opRotr:
			p(w, "MOVQ %s, AX", a[0])
			p(w, "RORQ $%d, AX", n.amt)
		case opShr:
			p(w, "MOVQ %s, AX", a[0])
			p(w, "SHRQ $%d, AX", n.amt)
		default:
			panic(n.op.String())
		}
		e.slot[n] = e.alloc(8, 8)
		p(w, "MOVQ AX, %s", mem(e.slot[n]))
	}
	// Constants the vector code reads from memory.
	need := func(v Val) {
		if v.n == nil {
			if e.consts != nil {
				e.consts.add(v.imm)
				return
			}
			if _, ok := e.immS[v.imm]; !ok {
				e.immS[v.imm] = e.alloc(8, 8)
				p(w, "MOVQ $0x%x, AX", v.imm)
				p(w, "MOVQ AX, %s", mem(e.immS[v.imm]))
			}
		}
		if !e.be.avx512 {
			if _, ok := e.bcast[v]; !ok {
				e.bcast[v] = e.broadcast(e.scalarSlot(v))
			}
		}
	}
	for _, n := range e.vecs {
		for _, a := range n.args {
			if a.kind() != kVec {
				need(a)
			}
		}
	}
}

func (e *emitter) broadcast(off int) int {
	b := e.alloc(32, 32)
	p(&e.pro, "VPBROADCASTQ %s, Y0", mem(off))
	p(&e.pro, "VMOVDQU Y0, %s", mem(b))
	return b
}

// scalarSlot is where a uni or imm value sits as one 64-bit word.
func (e *emitter) scalarSlot(v Val) int {
	if v.n == nil {
		return e.immS[v.imm]
	}
	return e.slot[v.n]
}

// scalarMem is the memory operand of a uni or imm value as one 64-bit
// word (AVX-512 reads it broadcast).
func (e *emitter) scalarMem(v Val) string {
	if v.n == nil && e.consts != nil {
		return e.consts.at(v.imm)
	}
	return mem(e.scalarSlot(v))
}

// bcastMem is the memory operand of a uni or imm value broadcast to a
// 32-byte vector (AVX2).
func (e *emitter) bcastMem(v Val) string {
	if v.n == nil && e.consts != nil {
		return e.consts.at(v.imm)
	}
	return mem(e.bcast[v])
}

func (e *emitter) r(i int) string { return fmt.Sprintf("%s%d", e.be.reg, i) }

func (e *emitter) vmov() string {
	if e.be.avx512 {
		return "VMOVDQU64"
	}
	return "VMOVDQU"
}

// nextUse is the first body position after the current one that reads n.
func (e *emitter) nextUse(n *node) int {
	for _, u := range e.uses[n] {
		if u > e.pos {
			return u
		}
	}
	return math.MaxInt
}

func (e *emitter) dies(n *node) bool { return e.nextUse(n) == math.MaxInt }

// getReg returns a free register, spilling the value read furthest ahead
// when none is free.
func (e *emitter) getReg() int {
	best, bestUse := -1, -1
	for r := 0; r < e.be.nregs; r++ {
		if r == e.nreg || e.pin[r] {
			continue
		}
		if e.valIn[r] == nil {
			e.pin[r] = true
			return r
		}
		if u := e.nextUse(e.valIn[r]); u > bestUse {
			best, bestUse = r, u
		}
	}
	if best < 0 {
		panic("register allocator: every register pinned")
	}
	v := e.valIn[best]
	if _, ok := e.spill[v]; !ok {
		var off int
		if k := len(e.free); k > 0 {
			off, e.free = e.free[k-1], e.free[:k-1]
		} else {
			off = e.alloc(e.be.vbytes, e.be.vbytes)
		}
		e.spill[v] = off
		p(&e.body, "%s %s, %s", e.vmov(), e.r(best), mem(off))
		e.spills++
	}
	delete(e.regOf, v)
	e.valIn[best] = nil
	e.pin[best] = true
	return best
}

// useReg puts vec value n in a register and pins it for this node.
func (e *emitter) useReg(n *node) string {
	if n == e.b.nonce {
		return e.r(e.nreg)
	}
	if r, ok := e.regOf[n]; ok {
		e.pin[r] = true
		return e.r(r)
	}
	r := e.getReg()
	p(&e.body, "%s %s, %s", e.vmov(), mem(e.spill[n]), e.r(r))
	e.reloads++
	e.regOf[n] = r
	e.valIn[r] = n
	return e.r(r)
}

// operand is how an instruction reads v when memory is allowed: a
// register, a spill slot, or a uni/imm slot (broadcast on AVX-512).
type operand struct {
	text  string
	bcast bool
}

func (e *emitter) useAny(v Val) operand {
	if v.kind() != kVec {
		if e.be.avx512 {
			return operand{text: e.scalarMem(v), bcast: true}
		}
		return operand{text: e.bcastMem(v)}
	}
	if _, ok := e.regOf[v.n]; ok || v.n == e.b.nonce {
		return operand{text: e.useReg(v.n)}
	}
	return operand{text: mem(e.spill[v.n])}
}

// inReg reports whether v is a vec value now in a register.
func (e *emitter) inReg(v Val) bool {
	if v.kind() != kVec {
		return false
	}
	_, ok := e.regOf[v.n]
	return ok || v.n == e.b.nonce
}

// release frees what a dying vec value holds; its spill slot only once
// the node's instructions, which may still read it, are out.
func (e *emitter) release(v Val) {
	if v.kind() != kVec || v.n == e.b.nonce || !e.dies(v.n) {
		return
	}
	if r, ok := e.regOf[v.n]; ok {
		e.valIn[r] = nil
		e.pin[r] = false
		delete(e.regOf, v.n)
	}
	if off, ok := e.spill[v.n]; ok {
		e.later = append(e.later, off)
		delete(e.spill, v.n)
	}
}

func (e *emitter) define(n *node, r int) {
	e.regOf[n] = r
	e.valIn[r] = n
}

func (e *emitter) endNode() {
	for i := range e.pin {
		e.pin[i] = false
	}
	e.free = append(e.free, e.later...)
	e.later = e.later[:0]
}

var binMnemonic = map[opcode][2]string{ // AVX-512, AVX2
	opAdd: {"VPADDQ", "VPADDQ"},
	opOr:  {"VPORQ", "VPOR"},
	opXor: {"VPXORQ", "VPXOR"},
}

func (e *emitter) mn(op opcode) string {
	if e.be.avx512 {
		return binMnemonic[op][0]
	}
	return binMnemonic[op][1]
}

func (o operand) with(mn string) string {
	if o.bcast {
		return mn + ".BCST"
	}
	return mn
}

// binary emits dst = x op y for a commutative op, with the operand that
// can come from memory in the last source position.
func (e *emitter) binary(n *node) {
	x, y := n.args[0], n.args[1]
	if x.kind() != kVec || (!e.inReg(x) && e.inReg(y)) {
		x, y = y, x
	}
	xr := e.useReg(x.n)
	yo := e.useAny(y)
	e.release(x)
	e.release(y)
	d := e.getReg()
	p(&e.body, "%s %s, %s, %s", yo.with(e.mn(n.op)), yo.text, xr, e.r(d))
	e.define(n, d)
}

var truth = map[opcode]uint8{opXor3: 0x96, opCh: 0xca, opMaj: 0xe8}

// ternlog emits a three-input function as one VPTERNLOGQ: the first
// source is overwritten (a dying argument if there is one), the last may be
// memory; the truth table is permuted to match.
func (e *emitter) ternlog(n *node) {
	args := n.args
	tt := truth[n.op]
	// Values with a register of their own this node may overwrite.
	owned := map[int]int{}
	var nonvec []int
	for i, a := range args {
		if a.kind() != kVec {
			nonvec = append(nonvec, i)
		}
	}
	for len(nonvec) > 1 {
		i := nonvec[0]
		nonvec = nonvec[1:]
		r := e.getReg()
		p(&e.body, "VPBROADCASTQ %s, %s", e.scalarMem(args[i]), e.r(r))
		owned[i] = r
	}
	c := -1
	if len(nonvec) == 1 {
		c = nonvec[0]
	} else {
		for i, a := range args {
			if _, ok := owned[i]; !ok && a.kind() == kVec && !e.inReg(a) {
				c = i
				break
			}
		}
	}
	// The overwritten source: a temporary, else a dying register value,
	// else a copy.
	a := -1
	for i := range args {
		if _, ok := owned[i]; ok && i != c {
			a = i
		}
	}
	if a < 0 {
		for i, v := range args {
			if i != c && e.inReg(v) && v.n != e.b.nonce && e.dies(v.n) && v.n != args[(i+1)%3].n && v.n != args[(i+2)%3].n {
				a = i
				break
			}
		}
	}
	if c < 0 {
		for i := range args {
			if i != a {
				c = i
				break
			}
		}
	}
	if a < 0 {
		for i := range args {
			if i != c {
				a = i
				break
			}
		}
	}
	bi := 3 - a - c
	co := operand{}
	if r, ok := owned[c]; ok {
		co.text = e.r(r)
	} else {
		co = e.useAny(args[c])
	}
	var br string
	if r, ok := owned[bi]; ok {
		br = e.r(r)
	} else {
		br = e.useReg(args[bi].n)
	}
	var d int
	if r, ok := owned[a]; ok {
		d = r
	} else if r, ok := e.regOf[args[a].n]; ok && e.dies(args[a].n) {
		d = r
		e.release(args[a])
	} else {
		src := e.useAny(args[a])
		d = e.getReg()
		mv := "VMOVDQU64" // from a spill slot
		if e.inReg(args[a]) {
			mv = "VMOVDQA64"
		}
		p(&e.body, "%s %s, %s", mv, src.text, e.r(d))
	}
	var imm8 uint8
	for bitsABC := range 8 {
		val := [3]int{}
		val[a] = bitsABC >> 2 & 1
		val[bi] = bitsABC >> 1 & 1
		val[c] = bitsABC & 1
		idx := val[0]<<2 | val[1]<<1 | val[2]
		imm8 |= (tt >> idx & 1) << bitsABC
	}
	p(&e.body, "%s $0x%02x, %s, %s, %s", co.with("VPTERNLOGQ"), imm8, co.text, br, e.r(d))
	for i, v := range args {
		if _, ok := owned[i]; ok {
			continue
		}
		e.release(v)
	}
	e.define(n, d)
}

// vector emits one vec node.
func (e *emitter) vector(n *node) {
	// Arguments already in registers stay there while this node claims
	// registers: they are read now, whatever their next use.
	for _, a := range n.args {
		if a.kind() == kVec && a.n != e.b.nonce {
			if r, ok := e.regOf[a.n]; ok {
				e.pin[r] = true
			}
		}
	}
	switch n.op {
	case opAdd, opOr, opXor:
		e.binary(n)
	case opXor3, opCh, opMaj:
		if e.be.avx512 {
			e.ternlog(n)
		} else {
			e.logic2(n)
		}
	case opRotr, opShr:
		e.shift(n)
	case opLoad:
		d := e.getReg()
		p(&e.body, "%s %s, %s", e.vmov(), mem(n.param*e.be.vbytes), e.r(d))
		e.define(n, d)
	case opMsg:
		e.gather(n)
	default:
		panic(n.op.String())
	}
}

// gather loads message word n.param of every lane: lane l's chunk is at
// msgBase plus lane l's offset in the reserved register; the words are
// big-endian.
func (e *emitter) gather(n *node) {
	addr := fmt.Sprintf("%d(%s)(%s*1)", 8*n.param, msgBase, e.r(e.nreg))
	if e.be.avx512 {
		d := e.getReg()
		p(&e.body, "KXNORW K1, K1, K1")
		p(&e.body, "VPGATHERQQ %s, K1, %s", addr, e.r(d))
		p(&e.body, "VPSHUFB bswap64<>(SB), %s, %s", e.r(d), e.r(d))
		e.define(n, d)
		return
	}
	m := e.getReg() // the mask: all lanes
	d := e.getReg()
	p(&e.body, "VPCMPEQQ %s, %s, %s", e.r(m), e.r(m), e.r(m))
	p(&e.body, "VPGATHERQQ %s, %s, %s", e.r(m), addr, e.r(d))
	p(&e.body, "VPSHUFB bswap64<>(SB), %s, %s", e.r(d), e.r(d))
	e.define(n, d)
}

func (e *emitter) shift(n *node) {
	x := n.args[0]
	if e.be.avx512 {
		xo := e.useAny(x)
		e.release(x)
		d := e.getReg()
		mn := "VPRORQ"
		if n.op == opShr {
			mn = "VPSRLQ"
		}
		p(&e.body, "%s $%d, %s, %s", mn, n.amt, xo.text, e.r(d))
		e.define(n, d)
		return
	}
	xr := e.useReg(x.n)
	switch {
	case n.op == opShr:
		e.release(x)
		d := e.getReg()
		p(&e.body, "VPSRLQ $%d, %s, %s", n.amt, xr, e.r(d))
		e.define(n, d)
	case n.amt == 8:
		e.release(x)
		d := e.getReg()
		p(&e.body, "VPSHUFB rotr8<>(SB), %s, %s", xr, e.r(d))
		e.define(n, d)
	default:
		t := e.getReg()
		p(&e.body, "VPSRLQ $%d, %s, %s", n.amt, xr, e.r(t))
		e.release(x)
		d := e.getReg()
		p(&e.body, "VPSLLQ $%d, %s, %s", 64-n.amt, xr, e.r(d))
		p(&e.body, "VPOR %s, %s, %s", e.r(t), e.r(d), e.r(d))
		e.define(n, d)
	}
}

// logic2 emits xor3, ch and maj from two-input AVX2 instructions.
func (e *emitter) logic2(n *node) {
	args := n.args
	// A value read more than once, or as the first source, must be in a
	// register; uni and imm values come from their broadcast slots.
	regOrLoad := func(v Val) string {
		if v.kind() == kVec {
			return e.useReg(v.n)
		}
		r := e.getReg()
		p(&e.body, "VMOVDQU %s, %s", e.bcastMem(v), e.r(r))
		return e.r(r)
	}
	w := &e.body
	switch n.op {
	case opXor3:
		// Put a register value first.
		for i := range args {
			if e.inReg(args[i]) {
				args = []Val{args[i], args[(i+1)%3], args[(i+2)%3]}
				break
			}
		}
		x := regOrLoad(args[0])
		y := e.useAny(args[1])
		z := e.useAny(args[2])
		e.release(args[0])
		e.release(args[1])
		d := e.getReg()
		p(w, "VPXOR %s, %s, %s", y.text, x, e.r(d))
		p(w, "VPXOR %s, %s, %s", z.text, e.r(d), e.r(d))
		e.release(args[2])
		e.define(n, d)
	case opCh: // ((y ^ z) & x) ^ z; z is read twice, y once
		x, y, z := args[0], args[1], args[2]
		var first, zo string
		if z.kind() == kVec && y.kind() != kVec {
			zr := e.useReg(z.n)
			first = fmt.Sprintf("VPXOR %s, %s", e.useAny(y).text, zr)
			zo = zr
		} else {
			yr := regOrLoad(y)
			zo = e.useAny(z).text
			first = fmt.Sprintf("VPXOR %s, %s", zo, yr)
		}
		xo := e.useAny(x)
		e.release(y)
		d := e.getReg()
		p(w, "%s, %s", first, e.r(d))
		p(w, "VPAND %s, %s, %s", xo.text, e.r(d), e.r(d))
		p(w, "VPXOR %s, %s, %s", zo, e.r(d), e.r(d))
		e.release(x)
		e.release(z)
		e.define(n, d)
	case opMaj: // ((x ^ y) & (y ^ z)) ^ y
		x, y, z := args[0], args[1], args[2]
		yr := regOrLoad(y)
		xo := e.useAny(x)
		zo := e.useAny(z)
		d := e.getReg()
		t := e.getReg()
		p(w, "VPXOR %s, %s, %s", xo.text, yr, e.r(d))
		p(w, "VPXOR %s, %s, %s", zo.text, yr, e.r(t))
		p(w, "VPAND %s, %s, %s", e.r(t), e.r(d), e.r(d))
		p(w, "VPXOR %s, %s, %s", yr, e.r(d), e.r(d))
		e.release(x)
		e.release(y)
		e.release(z)
		e.define(n, d)
	}
}

// emitBody emits the vec nodes into the loop body; afterwards the roots
// are in registers or spill slots.
func (e *emitter) emitBody() {
	for i, n := range e.vecs {
		e.pos = i
		e.vector(n)
		e.endNode()
	}
	e.pos = len(e.vecs)
}

// scratchBytes is how far past the params pointer the kernel writes.
func (e *emitter) scratchBytes() int { return e.scr }

// stats is one line of counts for -stats.
func (e *emitter) stats(fn string) string {
	return fmt.Sprintf("%-18s %5d instructions in the loop, %3d spills, %3d reloads, %5d scratch bytes\n",
		fn, strings.Count(e.body.String(), "\n"), e.spills, e.reloads, e.scratchBytes())
}
