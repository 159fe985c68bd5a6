package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/flowmail/flowmail/internal/sha512block"
	"github.com/flowmail/flowmail/internal/testseed"
)

// TestGeneratedFilesUpToDate: the committed kernels are what this
// generator writes (run go generate ./pow ./block/internal/sha512x after
// changing it).
func TestGeneratedFilesUpToDate(t *testing.T) {
	dirs := map[string]string{"pow": "pow", "sha512x": "block/internal/sha512x"}
	for pkg, gen := range generators {
		files, _ := gen()
		for name, want := range files {
			path := filepath.Join("..", "..", dirs[pkg], name)
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s/%s is stale: run go generate ./%s", dirs[pkg], name, dirs[pkg])
			}
		}
	}
}

// TestFoldedHashMatchesSHA512 evaluates each pow kernel's nodes, after
// constant folding, on random params and lanes, and compares the IDs with
// the plain compression function: folding must not change the hash.
func TestFoldedHashMatchesSHA512(t *testing.T) {
	r := testseed.Rand(t)
	for _, sp := range specs() {
		_, outs := build(sp)
		for range 50 {
			params := make([]uint64, pScr)
			for i := range params {
				params[i] = r.Uint64()
			}
			shift := uint(8 * r.IntN(8))
			lane := r.Uint64() &^ (1<<shift - 1) // the low nonce bytes, in place
			params[pMsg+sp.v] &= 1<<shift - 1

			st := [8]uint64(params[pState : pState+8])
			w := [16]uint64(params[pMsg : pMsg+16])
			w[sp.v] |= lane
			sha512block.Block(&st, &w)
			if sp.two {
				w2 := [16]uint64(params[pMsg2 : pMsg2+16])
				sha512block.Block(&st, &w2)
			}
			o := [16]uint64{st[0], st[1], st[2], st[3], 1 << 63, 15: 256}
			id := sha512block.IV256
			sha512block.Block(&id, &o)

			in := func(n *node) uint64 {
				if n.kind == kVec {
					return lane
				}
				return params[n.param]
			}
			memo := map[*node]uint64{}
			for i, out := range outs {
				if got := eval(out, in, memo); got != id[i] {
					t.Fatalf("%s: ID word %d = %#x, want %#x", sp.name(), i, got, id[i])
				}
			}
		}
	}
}

// TestSpecOfMatchesPadding checks the layout a length gets against SHA-512
// padding done by hand: the last message byte's word, and whether 0x80
// and the 16-byte length still fit in its chunk.
func TestSpecOfMatchesPadding(t *testing.T) {
	for n := 8; n < 8+2*chunk; n++ {
		padded := (n + 1 + 16 + chunk - 1) / chunk * chunk
		want := spec{v: (n - 1) % chunk / 8, two: padded-(n-1)/chunk*chunk > chunk}
		if got := specOf(n % chunk); got != want {
			t.Errorf("length %d: %+v, want %+v", n, got, want)
		}
	}
}

// TestSpecsCoverPowLengths: every length in the table gets a kernel, and
// no two kernels share a layout.
func TestSpecsCoverPowLengths(t *testing.T) {
	ss := specs()
	for _, r := range powLengths {
		if !slices.Contains(ss, specOf(r)) {
			t.Errorf("length %d mod 128 (%+v) has no kernel", r, specOf(r))
		}
	}
	for i, sp := range ss {
		if slices.Contains(ss[i+1:], sp) {
			t.Errorf("kernel %s generated twice", sp.name())
		}
	}
}

// TestLanesHashMatchesSHA512 evaluates the multi-lane kernel's nodes on
// random states and chunks against the plain compression function.
func TestLanesHashMatchesSHA512(t *testing.T) {
	r := testseed.Rand(t)
	_, outs := buildLanes()
	for range 50 {
		var st [8]uint64
		var w [16]uint64
		for i := range st {
			st[i] = r.Uint64()
		}
		for i := range w {
			w[i] = r.Uint64()
		}
		in := func(n *node) uint64 {
			switch n.op {
			case opLoad:
				return st[n.param]
			case opMsg:
				return w[n.param]
			}
			t.Fatalf("unexpected input %v", n.op)
			return 0
		}
		memo := map[*node]uint64{}
		want := st
		sha512block.Block(&want, &w)
		for i, out := range outs {
			if got := eval(out, in, memo); got != want[i] {
				t.Fatalf("state word %d = %#x, want %#x", i, got, want[i])
			}
		}
	}
}
