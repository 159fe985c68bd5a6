package main

import (
	"fmt"
	"math/bits"
)

// kind says when a value is known, which decides where it is computed:
// imm values fold at generation time, uni values are the same in every lane
// and every loop iteration (computed once per call, in scalar code), vec
// values differ per lane and are computed in the loop body.
type kind uint8

const (
	kImm kind = iota
	kUni
	kVec
)

type opcode uint8

const (
	opInput opcode = iota // uni: a params word; vec: the loop-carried nonce lanes
	opAdd
	opOr
	opXor
	opXor3
	opCh  // x ? y : z, bitwise
	opMaj // majority of x, y, z, bitwise
	opRotr
	opShr
	opLoad // vec: a vector of the kernel's memory, read at the top of each iteration
	opMsg  // vec: a word of each lane's current message chunk
)

var opNames = [...]string{"input", "add", "or", "xor", "xor3", "ch", "maj", "rotr", "shr", "load", "msg"}

func (o opcode) String() string { return opNames[o] }

// Val is an imm constant (n == nil) or a node.
type Val struct {
	imm uint64
	n   *node
}

func (v Val) kind() kind {
	if v.n == nil {
		return kImm
	}
	return v.n.kind
}

type node struct {
	kind  kind
	op    opcode
	args  []Val
	amt   int // rotate or shift count
	param int // opInput uni: params word index; opLoad: vector index; opMsg: word index
	seq   int // creation order
	live  bool
}

// builder records nodes in creation order; creation order is emission
// order, so the code that builds the hash decides the schedule.
type builder struct {
	nodes []*node
	nonce *node // the vec input: lane nonces, shifted into place
}

func imm(c uint64) Val { return Val{imm: c} }

func (b *builder) newNode(k kind, op opcode, amt int, args ...Val) Val {
	n := &node{kind: k, op: op, amt: amt, args: args, seq: len(b.nodes)}
	b.nodes = append(b.nodes, n)
	return Val{n: n}
}

// param is a uni input read from the kernel's params block.
func (b *builder) param(i int) Val {
	v := b.newNode(kUni, opInput, 0)
	v.n.param = i
	return v
}

// load is a vec input: vector i of the kernel's memory (one word per
// lane), as it stands at the top of each iteration.
func (b *builder) load(i int) Val {
	v := b.newNode(kVec, opLoad, 0)
	v.n.param = i
	return v
}

// msg is a vec input: big-endian word i of each lane's current 128-byte
// message chunk.
func (b *builder) msg(i int) Val {
	v := b.newNode(kVec, opMsg, 0)
	v.n.param = i
	return v
}

// nonceLanes is the vec input: lane l holds (base + lanes·iter + l) << shift.
func (b *builder) nonceLanes() Val {
	if b.nonce == nil {
		b.nonce = b.newNode(kVec, opInput, 0).n
	}
	return Val{n: b.nonce}
}

func evalOp(op opcode, amt int, a []uint64) uint64 {
	switch op {
	case opAdd:
		return a[0] + a[1]
	case opOr:
		return a[0] | a[1]
	case opXor:
		return a[0] ^ a[1]
	case opXor3:
		return a[0] ^ a[1] ^ a[2]
	case opCh:
		return a[0]&a[1] | ^a[0]&a[2]
	case opMaj:
		return a[0]&a[1] | a[0]&a[2] | a[1]&a[2]
	case opRotr:
		return bits.RotateLeft64(a[0], -amt)
	case opShr:
		return a[0] >> amt
	}
	panic(fmt.Sprintf("evalOp %v", op))
}

// op builds a node, folding it when every argument is imm; the result is
// as late as its latest argument.
func (b *builder) op(op opcode, amt int, args ...Val) Val {
	k := kImm
	for _, a := range args {
		k = max(k, a.kind())
	}
	if k == kImm {
		c := make([]uint64, len(args))
		for i, a := range args {
			c[i] = a.imm
		}
		return imm(evalOp(op, amt, c))
	}
	return b.newNode(k, op, amt, args...)
}

func (b *builder) or(x, y Val) Val       { return b.op(opOr, 0, x, y) }
func (b *builder) xor3(x, y, z Val) Val  { return b.op(opXor3, 0, x, y, z) }
func (b *builder) ch(x, y, z Val) Val    { return b.op(opCh, 0, x, y, z) }
func (b *builder) maj(x, y, z Val) Val   { return b.op(opMaj, 0, x, y, z) }
func (b *builder) rotr(x Val, n int) Val { return b.op(opRotr, n, x) }
func (b *builder) shr(x Val, n int) Val  { return b.op(opShr, n, x) }

// sum adds its arguments, reassociating so that imm terms fold into one
// constant and uni terms into one per-call value; vec terms are added in
// the order given (put the one on the critical path last).
func (b *builder) sum(args ...Val) Val {
	var c uint64
	var uni, vec []Val
	for _, a := range args {
		switch a.kind() {
		case kImm:
			c += a.imm
		case kUni:
			uni = append(uni, a)
		case kVec:
			vec = append(vec, a)
		}
	}
	acc := imm(c)
	for _, u := range uni {
		if acc.kind() == kImm && acc.imm == 0 {
			acc = u
			continue
		}
		acc = b.op(opAdd, 0, acc, u)
	}
	for _, v := range vec {
		if acc.kind() == kImm && acc.imm == 0 {
			acc = v
			continue
		}
		acc = b.op(opAdd, 0, acc, v)
	}
	return acc
}

// markLive flags the nodes the roots depend on; the rest are dead code.
func markLive(roots []Val) {
	var visit func(v Val)
	visit = func(v Val) {
		if v.n == nil || v.n.live {
			return
		}
		v.n.live = true
		for _, a := range v.n.args {
			visit(a)
		}
	}
	for _, r := range roots {
		visit(r)
	}
}

// eval computes v in one lane, taking the inputs (opInput, opLoad, opMsg
// nodes) from in: the reference the emitted code must match (used by the
// generator's tests).
func eval(v Val, in func(*node) uint64, memo map[*node]uint64) uint64 {
	if v.n == nil {
		return v.imm
	}
	if r, ok := memo[v.n]; ok {
		return r
	}
	var r uint64
	switch v.n.op {
	case opInput, opLoad, opMsg:
		r = in(v.n)
	default:
		a := make([]uint64, len(v.n.args))
		for i, x := range v.n.args {
			a[i] = eval(x, in, memo)
		}
		r = evalOp(v.n.op, v.n.amt, a)
	}
	memo[v.n] = r
	return r
}
