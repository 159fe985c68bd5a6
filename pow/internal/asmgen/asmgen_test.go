package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/flowmail/flowmail/pow/internal/sha512block"
)

// TestGeneratedFilesUpToDate: the committed kernels are what this
// generator writes (run go generate ./pow after changing it).
func TestGeneratedFilesUpToDate(t *testing.T) {
	asm, stub, layout, _ := generate()
	for name, want := range map[string][]byte{"kernel_amd64.s": asm, "kernel_amd64.go": stub, "kernel_layout.go": layout} {
		got, err := os.ReadFile(filepath.Join("..", "..", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("pow/%s is stale: run go generate ./pow", name)
		}
	}
}

// TestFoldedHashMatchesSHA512 evaluates each kernel's nodes, after
// constant folding, on random params and lanes, and compares the IDs with
// the plain compression function: folding must not change the hash.
func TestFoldedHashMatchesSHA512(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, sp := range specs {
		_, outs := build(sp)
		for range 50 {
			params := make([]uint64, pScr)
			for i := range params {
				params[i] = r.Uint64()
			}
			v := sp.v
			if v < 0 {
				v = r.IntN(16)
			}
			for i := range 16 {
				params[pSel+i] = 0
			}
			params[pSel+v] = ^uint64(0)
			shift := uint(8 * r.IntN(8))
			lane := r.Uint64() &^ (1<<shift - 1) // the low nonce bytes, in place
			params[pMsg+v] &= 1<<shift - 1

			st := [8]uint64(params[pState : pState+8])
			w := [16]uint64(params[pMsg : pMsg+16])
			w[v] |= lane
			sha512block.Block(&st, &w)
			if sp.two {
				w2 := [16]uint64(params[pMsg2 : pMsg2+16])
				sha512block.Block(&st, &w2)
			}
			o := [16]uint64{st[0], st[1], st[2], st[3], 1 << 63, 15: 256}
			id := sha512block.IV256
			sha512block.Block(&id, &o)

			memo := map[*node]uint64{}
			for i, out := range outs {
				if got := eval(out, params, lane, memo); got != id[i] {
					t.Fatalf("%s: ID word %d = %#x, want %#x", sp.name, i, got, id[i])
				}
			}
		}
	}
}
