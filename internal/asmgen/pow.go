package main

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/flowmail/flowmail/internal/sha512block"
)

// The proof-of-work kernels of package pow. Each grinds nonces in lanes:
// per iteration it compresses the block's final chunk (the only one
// holding varying nonce bits) from a cached midstate, then the 32-byte
// outer hash, and tests each lane's ID against the target without
// leaving the vector unit. The hash is written once, over values that
// know when they are known (generation time, once per call, or per lane),
// so everything that does not depend on the varying nonce word folds out
// of the loop.

// Params block layout, in 64-bit words, shared with the Go side through
// the generated stub file.
const (
	pState  = 0  // [8] SHA-512/256 state before the nonce's final chunk
	pMsg    = 8  // [16] that chunk, padded, with the varying nonce bits zero
	pMsg2   = 24 // [16] the constant second chunk, when the padding needs one
	pBase   = 40 // low nonce bits of lane 0, first iteration
	pShift  = 41 // left shift that puts the low nonce bits in their word
	pTarget = 42 // first word of the target ID
	pMask   = 43 // leading bits of the first ID word that must match
	pOut    = 48 // [4][lanes] ID words of the last iteration run
	pScr    = 80 // scratch: per-call values and spills
)

// chunk is the SHA-512 block size.
const chunk = 128

// powLengths lists the block lengths, mod 128, that get SIMD kernels; a
// block of any other length grinds on pow's portable kernel. This is the
// one place that choice is made: change it and run go generate ./pow.
var powLengths = []int{
	27, // index blocks: 35 + 1120 + 16 + 128·j + 8 bytes (docs/PROTOCOL.md 9.5)
}

// spec names a kernel: which word of the final chunk holds the varying
// nonce bits, and whether a constant second chunk follows (the padding
// did not fit). A kernel's code depends on nothing else of the length.
type spec struct {
	v   int
	two bool
}

// specOf is the layout of a block of length ≡ r (mod 128): its last byte
// sits at r-1 in the final chunk, and 0x80 and the 16-byte length follow.
func specOf(r int) spec {
	last := (r + chunk - 1) % chunk
	return spec{v: last / 8, two: last+1+17 > chunk}
}

// specs are the kernels powLengths needs, each once, in table order.
func specs() []spec {
	var ss []spec
	for _, r := range powLengths {
		if r < 0 || r >= chunk {
			panic(fmt.Sprintf("powLengths: %d is not a length mod %d", r, chunk))
		}
		if sp := specOf(r); !slices.Contains(ss, sp) {
			ss = append(ss, sp)
		}
	}
	return ss
}

func (sp spec) name() string {
	if sp.two {
		return fmt.Sprintf("V%dTwo", sp.v)
	}
	return fmt.Sprintf("V%d", sp.v)
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
		m[i] = b.param(pMsg + i)
		if i == sp.v {
			m[i] = b.or(nonce, m[i])
		}
	}
	words := func(m *[16]Val) func(int) Val { return func(i int) Val { return m[i] } }
	inner := compress(b, st, words(&m), false)
	if sp.two {
		var m2 [16]Val
		for i := range m2 {
			m2[i] = b.param(pMsg2 + i)
		}
		inner = compress(b, inner, words(&m2), false)
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
	id := compress(b, iv, words(&o), false)
	return b, [4]Val{id[0], id[1], id[2], id[3]}
}

// powEmitter wraps the loop body of one pow kernel: the nonce lanes in the
// reserved register, the target test, the ID words of the last iteration.
type powEmitter struct {
	*emitter
	sp                    spec
	outs                  [4]Val
	step                  int // scalar slot: lanes << shift
	stepB, targetB, maskB int // AVX2: broadcast slots of the step, target and mask
}

func newPowEmitter(be backend, sp spec) *powEmitter {
	b, outs := build(sp)
	return &powEmitter{emitter: newEmitter(be, b, outs[:], pScr*8, nil), sp: sp, outs: outs}
}

func (e *powEmitter) fn() string { return "kernel" + e.sp.name() + e.be.name }

// noncePrologue puts the lane nonces, (base + lane) << shift, in the
// reserved register, stepping by lanes << shift.
func (e *powEmitter) noncePrologue() {
	w := &e.pro
	e.step = e.alloc(8, 8)
	p(w, "MOVQ %s, CX", mem(pShift*8))
	p(w, "MOVQ $%d, AX", e.be.lanes)
	p(w, "SHLQ CX, AX")
	p(w, "MOVQ AX, %s", mem(e.step))
	n := e.r(e.nreg)
	p(w, "VPBROADCASTQ %s, %s", mem(pBase*8), n)
	p(w, "VPADDQ laneidx<>(SB), %s, %s", n, n)
	if e.be.avx512 {
		p(w, "VPSLLVQ.BCST %s, %s, %s", mem(pShift*8), n, n)
		return
	}
	p(w, "VPBROADCASTQ %s, Y0", mem(pShift*8))
	p(w, "VPSLLVQ Y0, %s, %s", n, n)
	// AVX2 has no broadcast memory operands: the step, target and mask are
	// laid out as full vectors too.
	e.stepB = e.broadcast(e.step)
	e.targetB = e.broadcast(pTarget * 8)
	e.maskB = e.broadcast(pMask * 8)
}

// text assembles the kernel: prologue, loop body, target test, exit.
func (e *powEmitter) text() string {
	e.prologue()
	e.noncePrologue()
	e.emitBody()
	w := &e.body
	// Does any lane's first ID word match the target in its leading bits?
	h0 := e.useReg(e.outs[0].n)
	t := e.getReg()
	if e.be.avx512 {
		p(w, "VPXORQ.BCST %s, %s, %s", mem(pTarget*8), h0, e.r(t))
		p(w, "VPTESTNMQ.BCST %s, %s, K1", mem(pMask*8), e.r(t))
		p(w, "KORTESTW K1, K1")
		p(w, "JNZ found")
		p(w, "VPADDQ.BCST %s, %s, %s", mem(e.step), e.r(e.nreg), e.r(e.nreg))
	} else {
		z := e.getReg()
		p(w, "VPXOR %s, %s, %s", mem(e.targetB), h0, e.r(t))
		p(w, "VPAND %s, %s, %s", mem(e.maskB), e.r(t), e.r(t))
		p(w, "VPXOR %s, %s, %s", e.r(z), e.r(z), e.r(z))
		p(w, "VPCMPEQQ %s, %s, %s", e.r(z), e.r(t), e.r(t))
		p(w, "VMOVMSKPD %s, AX", e.r(t))
		p(w, "TESTL AX, AX")
		p(w, "JNZ found")
		p(w, "VPADDQ %s, %s, %s", mem(e.stepB), e.r(e.nreg), e.r(e.nreg))
	}
	e.endNode()

	var s strings.Builder
	fmt.Fprintf(&s, "// func %s(p *uint64, n uint64) (iters uint64, mask uint64)\n", e.fn())
	fmt.Fprintf(&s, "// Requires: %s\n", map[bool]string{true: "AVX512F", false: "AVX2"}[e.be.avx512])
	fmt.Fprintf(&s, "TEXT ·%s(SB), NOSPLIT, $0-32\n", e.fn())
	p(&s, "MOVQ p+0(FP), DI")
	p(&s, "MOVQ n+8(FP), SI")
	p(&s, "XORL CX, CX")
	p(&s, "XORL AX, AX")
	p(&s, "TESTQ SI, SI")
	p(&s, "JZ none")
	s.WriteString(e.pro.String())
	p(&s, "XORL CX, CX")
	s.WriteString("\nloop:\n")
	s.WriteString(e.body.String())
	p(&s, "INCQ CX")
	p(&s, "CMPQ CX, SI")
	p(&s, "JB loop")
	p(&s, "XORL AX, AX")
	p(&s, "JMP done")
	s.WriteString("\nfound:\n")
	if e.be.avx512 {
		p(&s, "KMOVW K1, AX")
	}
	s.WriteString("\ndone:\n")
	// The ID words of the last iteration run; the nonce register is free
	// now and carries spilled words to memory.
	for i, o := range e.outs {
		dst := mem(pOut*8 + i*e.be.vbytes)
		if r, ok := e.regOf[o.n]; ok {
			p(&s, "%s %s, %s", e.vmov(), e.r(r), dst)
			continue
		}
		p(&s, "%s %s, %s", e.vmov(), mem(e.spill[o.n]), e.r(e.nreg))
		p(&s, "%s %s, %s", e.vmov(), e.r(e.nreg), dst)
	}
	p(&s, "VZEROUPPER")
	s.WriteString("\nnone:\n")
	p(&s, "MOVQ CX, iters+16(FP)")
	p(&s, "MOVQ AX, mask+24(FP)")
	p(&s, "RET")
	return s.String()
}

// generatePow returns pow's kernel_amd64.s, kernel_amd64.go and
// kernel_layout.go, and statistics.
func generatePow() (files map[string][]byte, stats string) {
	var s, g, l, st bytes.Buffer
	s.WriteString(header)
	s.WriteString("//go:build !purego\n\n#include \"textflag.h\"\n\n")
	for i := range 8 {
		fmt.Fprintf(&s, "DATA laneidx<>+%d(SB)/8, $%d\n", i*8, i)
	}
	s.WriteString("GLOBL laneidx<>(SB), RODATA|NOPTR, $64\n\n")
	writeRotr8(&s)

	g.WriteString(header)
	g.WriteString("//go:build !purego\n\npackage pow\n")
	l.WriteString(header)
	l.WriteString("package pow\n\n")
	fmt.Fprintf(&l, `// Params block of the kernels, in 64-bit words (see internal/asmgen).
const (
	pState  = %d
	pMsg    = %d
	pMsg2   = %d
	pBase   = %d
	pShift  = %d
	pTarget = %d
	pMask   = %d
	pOut    = %d
	pWords  = %d // the params block without scratch
)
`, pState, pMsg, pMsg2, pBase, pShift, pTarget, pMask, pOut, pScr)
	most := 0
	for _, be := range backends {
		var table strings.Builder
		for _, sp := range specs() {
			e := newPowEmitter(be, sp)
			s.WriteString("\n")
			s.WriteString(e.text())
			most = max(most, e.scratchBytes())
			fmt.Fprintf(&g, "\n// %s tries n iterations of %d lanes on blocks whose last word is word %d of a final chunk %s; see kernel.go.\n//\n//go:noescape\nfunc %s(p *uint64, n uint64) (iters uint64, mask uint64)\n",
				e.fn(), be.lanes, sp.v, map[bool]string{false: "that holds the padding", true: "followed by a padding chunk"}[sp.two], e.fn())
			fmt.Fprintf(&table, "\t\t{vary: %d, two: %v}: %s,\n", sp.v, sp.two, e.fn())
			st.WriteString(e.stats(e.fn()))
		}
		name := strings.ToLower(be.name)
		fmt.Fprintf(&g, "\n// %s runs the %s kernels, %d lanes, on the layouts of the block lengths\n// they were generated for (internal/asmgen, powLengths).\nvar %s = kernel{name: %q, lanes: %d, fast: map[layout]kernelFunc{\n%s}}\n",
			name, be.name, be.lanes, name, name, be.lanes, table.String())
	}
	fmt.Fprintf(&l, "\n// kernelWords is the size of the params block with the largest kernel's scratch.\nconst kernelWords = %d\n", (most+7)/8)
	return map[string][]byte{
		"kernel_amd64.s":   s.Bytes(),
		"kernel_amd64.go":  gofmt(g.Bytes()),
		"kernel_layout.go": gofmt(l.Bytes()),
	}, st.String()
}

// writeRotr8 writes the VPSHUFB pattern rotating each 64-bit word right
// by 8 bits (AVX2 rotates).
func writeRotr8(s *bytes.Buffer) {
	for i := range 4 {
		var q uint64
		for j := range 8 {
			q |= uint64(i%2*8+(j+1)%8) << (8 * j)
		}
		fmt.Fprintf(s, "DATA rotr8<>+%d(SB)/8, $0x%016x\n", i*8, q)
	}
	s.WriteString("GLOBL rotr8<>(SB), RODATA|NOPTR, $32\n")
}
