//go:build !purego

package pow

import (
	"testing"

	"github.com/flowmail/flowmail/block"
)

// TestIndexBlocksHaveSIMDKernels: every generated kernel set, whether or
// not this CPU runs it, has its own code for index blocks, 1179 + 128·j
// bytes (docs/PROTOCOL.md 9.5). When the index block's length rule
// changes, this fails until internal/asmgen's powLengths follows.
func TestIndexBlocksHaveSIMDKernels(t *testing.T) {
	for _, k := range []kernel{avx512, avx2} {
		for j := range 8 {
			n := block.MinIndexSize + chunk*j
			if _, lanes := k.pick(layoutOf(n)); lanes != k.lanes {
				t.Errorf("%s: index blocks of %d bytes (%d mod 128) grind on the portable kernel: add %d to powLengths in internal/asmgen/pow.go and run go generate ./pow",
					k.name, n, n%chunk, n%chunk)
			}
		}
	}
}
