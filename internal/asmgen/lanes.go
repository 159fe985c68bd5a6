package main

import (
	"bytes"
	"fmt"
	"strings"
)

// The multi-lane kernels of block/internal/sha512x: n SHA-512 compressions
// on each of the lanes' independent chaining states, lane l reading
// consecutive 128-byte chunks from its own address. Nothing folds here
// (every value differs per lane), so the generator contributes the
// register allocation, the just-in-time schedule and the gathers that
// load each message word of all lanes, byte-swapped, when its round
// needs it.
//
// The params block starts with the chaining state, word-major: word w of
// lane l at word w·lanes+l, read at the top of each iteration and written
// back at its end. Scratch (spills) follows from byte lanesScr.
const lanesScr = 8 * 64 // room for the widest state

// msgBase holds lane 0's current chunk address; the reserved vector
// register holds every lane's offset from it, so one scalar add steps all
// lanes to their next chunk.
const msgBase = "R11"

// buildLanes describes one iteration: one compression of each lane's
// chunk into its state.
func buildLanes() (*builder, []Val) {
	b := &builder{}
	var st [8]Val
	for i := range st {
		st[i] = b.load(i)
	}
	out := compress(b, st, b.msg, true)
	return b, out[:]
}

func lanesFn(be backend) string { return "blocks" + be.name }

// lanesText assembles one kernel; imm values go to consts.
func lanesText(be backend, consts *constTable) (string, *emitter) {
	b, roots := buildLanes()
	e := newEmitter(be, b, roots, lanesScr, consts)
	e.prologue() // no uni nodes: this only enters the round constants in consts
	e.emitBody()
	// The new state, over the old.
	w := &e.body
	var spilled []int
	for i, o := range roots {
		r, ok := e.regOf[o.n]
		if !ok {
			spilled = append(spilled, i)
			continue
		}
		p(w, "%s %s, %s", e.vmov(), e.r(r), mem(i*be.vbytes))
		delete(e.regOf, o.n)
		e.valIn[r] = nil
	}
	if len(spilled) > 0 {
		t := e.r(e.getReg())
		for _, i := range spilled {
			p(w, "%s %s, %s", e.vmov(), mem(e.spill[roots[i].n]), t)
			p(w, "%s %s, %s", e.vmov(), t, mem(i*be.vbytes))
		}
	}
	e.endNode()

	fn := lanesFn(be)
	var s strings.Builder
	fmt.Fprintf(&s, "// func %s(p *uint64, src *[8]*byte, n uint64)\n", fn)
	fmt.Fprintf(&s, "// Requires: %s\n", map[bool]string{true: "AVX512F, AVX512BW", false: "AVX2"}[be.avx512])
	fmt.Fprintf(&s, "TEXT ·%s(SB), NOSPLIT, $0-24\n", fn)
	p(&s, "MOVQ p+0(FP), DI")
	p(&s, "MOVQ src+8(FP), AX")
	p(&s, "MOVQ n+16(FP), SI")
	p(&s, "TESTQ SI, SI")
	p(&s, "JZ none")
	s.WriteString(e.pro.String())
	off := e.r(e.nreg)
	p(&s, "MOVQ (AX), %s", msgBase)
	if be.avx512 {
		p(&s, "VMOVDQU64 (AX), %s", off)
		p(&s, "VPSUBQ.BCST (AX), %s, %s", off, off)
	} else {
		p(&s, "VMOVDQU (AX), %s", off)
		p(&s, "VPBROADCASTQ (AX), Y0")
		p(&s, "VPSUBQ Y0, %s, %s", off, off)
	}
	p(&s, "XORL CX, CX")
	s.WriteString("\nloop:\n")
	s.WriteString(e.body.String())
	p(&s, "ADDQ $128, %s", msgBase)
	p(&s, "INCQ CX")
	p(&s, "CMPQ CX, SI")
	p(&s, "JB loop")
	p(&s, "VZEROUPPER")
	s.WriteString("\nnone:\n")
	p(&s, "RET")
	return s.String(), e
}

// generateLanes returns sha512x's kernel_amd64.s, kernel_amd64.go and
// kernel_layout.go, and statistics.
func generateLanes() (files map[string][]byte, stats string) {
	consts := &constTable{name: "consts", off: map[uint64]int{}}
	var body, st bytes.Buffer
	g := bytes.NewBufferString(header + "//go:build !purego\n\npackage sha512x\n")
	most := 0
	for _, be := range backends {
		txt, e := lanesText(be, consts)
		body.WriteString("\n")
		body.WriteString(txt)
		most = max(most, e.scratchBytes())
		fn := lanesFn(be)
		fmt.Fprintf(g, "\n// %s runs n compressions on each of %d lanes; see kernel.go.\n//\n//go:noescape\nfunc %s(p *uint64, src *[8]*byte, n uint64)\n", fn, be.lanes, fn)
		st.WriteString(e.stats(fn))
	}
	var s bytes.Buffer
	s.WriteString(header)
	s.WriteString("//go:build !purego\n\n#include \"textflag.h\"\n\n")
	// VPSHUFB pattern reversing the bytes of each 64-bit word.
	for i := range 8 {
		fmt.Fprintf(&s, "DATA bswap64<>+%d(SB)/8, $0x%016x\n", i*8, uint64(0x0001020304050607)+uint64(i%2)*0x0808080808080808)
	}
	s.WriteString("GLOBL bswap64<>(SB), RODATA|NOPTR, $64\n\n")
	writeRotr8(&s)
	s.WriteString("\n")
	consts.write(&s)
	s.Write(body.Bytes())

	l := fmt.Sprintf(header+`package sha512x

// Params block of the SIMD kernels, in 64-bit words (see internal/asmgen):
// the chaining state, word w of lane l at w·lanes+l, then scratch.
const stateWords = %d

// paramWords is the size of the params block with the largest kernel's scratch.
const paramWords = %d
`, lanesScr/8, (most+7)/8)
	return map[string][]byte{
		"kernel_amd64.s":   s.Bytes(),
		"kernel_amd64.go":  gofmt(g.Bytes()),
		"kernel_layout.go": gofmt([]byte(l)),
	}, st.String()
}

// constTable is a read-only table of 64-bit constants, each written four
// times over 32 bytes: AVX2 code reads an entry as a vector, AVX-512 code
// as a broadcast word.
type constTable struct {
	name string
	off  map[uint64]int
	vals []uint64
}

func (t *constTable) add(c uint64) {
	if _, ok := t.off[c]; !ok {
		t.off[c] = 32 * len(t.vals)
		t.vals = append(t.vals, c)
	}
}

func (t *constTable) at(c uint64) string {
	off, ok := t.off[c]
	if !ok {
		panic(fmt.Sprintf("constant %#x not in %s", c, t.name))
	}
	return fmt.Sprintf("%s<>+%d(SB)", t.name, off)
}

func (t *constTable) write(s *bytes.Buffer) {
	for i, c := range t.vals {
		for j := range 4 {
			fmt.Fprintf(s, "DATA %s<>+%d(SB)/8, $0x%016x\n", t.name, 32*i+8*j, c)
		}
	}
	fmt.Fprintf(s, "GLOBL %s<>(SB), RODATA|NOPTR, $%d\n", t.name, 32*len(t.vals))
}
