package mail

import (
	"bytes"
	"fmt"
	"testing"
)

// gfMul multiplies in GF(2^8) with the polynomial x^8+x^4+x^3+x^2+1
// (0x11d), bit by bit: an independent reference for spec 9.4.
func gfMul(a, b byte) byte {
	var p byte
	for b != 0 {
		if b&1 != 0 {
			p ^= a
		}
		carry := a & 0x80
		a <<= 1
		if carry != 0 {
			a ^= 0x1d
		}
		b >>= 1
	}
	return p
}

// gf holds the products of every pair, built from gfMul, so that the
// 170×170 inversion below takes milliseconds even under -race.
type gf [256][256]byte

func newGF() *gf {
	var g gf
	for a := range 256 {
		for b := range 256 {
			g[a][b] = gfMul(byte(a), byte(b))
		}
	}
	return &g
}

func (g *gf) pow(a byte, n int) byte {
	r := byte(1) // 0^0 = 1, as the spec's V[0][0]
	for range n {
		r = g[r][a]
	}
	return r
}

func (g *gf) inv(a byte) byte {
	for x := 1; x < 256; x++ {
		if g[a][x] == 1 {
			return byte(x)
		}
	}
	panic("no inverse of 0")
}

// specMatrix is spec 9.4's encoding matrix: V[r][c] = r^c for r < k+m,
// c < k, multiplied by the inverse of its top k×k square.
func specMatrix(g *gf, k, m int) [][]byte {
	v := make([][]byte, k+m)
	for r := range v {
		v[r] = make([]byte, k)
		for c := range v[r] {
			v[r][c] = g.pow(byte(r), c)
		}
	}
	// Invert the top square by Gauss-Jordan elimination.
	top := make([][]byte, k)
	inv := make([][]byte, k)
	for i := range top {
		top[i] = bytes.Clone(v[i])
		inv[i] = make([]byte, k)
		inv[i][i] = 1
	}
	for col := range k {
		p := col
		for top[p][col] == 0 {
			p++
		}
		top[col], top[p] = top[p], top[col]
		inv[col], inv[p] = inv[p], inv[col]
		s := g.inv(top[col][col])
		for j := range k {
			top[col][j], inv[col][j] = g[top[col][j]][s], g[inv[col][j]][s]
		}
		for r := range k {
			if f := top[r][col]; r != col && f != 0 {
				for j := range k {
					top[r][j] ^= g[f][top[col][j]]
					inv[r][j] ^= g[f][inv[col][j]]
				}
			}
		}
	}
	e := make([][]byte, k+m)
	for r := range e {
		e[r] = make([]byte, k)
		for c := range k {
			for j := range k {
				e[r][c] ^= g[v[r][j]][inv[j][c]]
			}
		}
	}
	return e
}

func TestReedSolomonIsTheSpecsVandermondeCode(t *testing.T) {
	c := testCodec(t)
	g := newGF()
	const size = 64
	for _, km := range [][2]int{{1, 1}, {2, ParityShards(2)}, {5, 3}, {33, ParityShards(33)}, {GroupDataShards, ParityShards(GroupDataShards)}, {170, 86}} {
		k, m := km[0], km[1]
		t.Run(fmt.Sprintf("%d+%d", k, m), func(t *testing.T) {
			e := specMatrix(g, k, m)
			for r := range k {
				for col := range k {
					if e[r][col] != btob(r == col) {
						t.Fatal("the top of the spec's matrix is not the identity: the code would not be systematic")
					}
				}
			}
			shards := make([][]byte, k+m)
			for i := range shards {
				shards[i] = make([]byte, size)
				if i < k {
					copy(shards[i], randomBytes(size, uint64(i)))
				}
			}
			enc, err := c.coder(k, m)
			if err != nil {
				t.Fatal(err)
			}
			if err := enc.Encode(shards); err != nil {
				t.Fatal(err)
			}
			for p := range m {
				want := make([]byte, size)
				for j := range k {
					for b := range size {
						want[b] ^= g[e[k+p][j]][shards[j][b]]
					}
				}
				if !bytes.Equal(shards[k+p], want) {
					t.Fatalf("parity shard %d differs from the spec's matrix", p)
				}
			}
		})
	}
}

func btob(b bool) byte {
	if b {
		return 1
	}
	return 0
}
