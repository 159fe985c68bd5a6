package block

import (
	"math/rand/v2"
	"testing"

	"github.com/flowmail/flowmail/block/internal/sha512x"
)

// laneKernels is every kernel this machine runs and the portable one at
// every width, so the lane scheduler is tested on any machine.
func laneKernels() []*sha512x.Kernel {
	ks := sha512x.Kernels()
	for l := 1; l <= sha512x.MaxLanes; l++ {
		ks = append(ks, sha512x.Portable(l))
	}
	return ks
}

// randomLength favours the lengths where padding changes shape: around
// 111/112 mod 128 (the tail takes one or two chunks), whole chunks, the
// empty block, and up to 70 KiB.
func randomLength(r *rand.Rand) int {
	switch r.IntN(4) {
	case 0:
		return 128*r.IntN(4) + []int{0, 1, 110, 111, 112, 113, 127}[r.IntN(7)]
	case 1:
		return 128*r.IntN(560) + 108 + r.IntN(24)
	case 2:
		return r.IntN(1024)
	}
	return r.IntN(70 << 10)
}

func randomBlocks(r *rand.Rand, count int) [][]byte {
	blocks := make([][]byte, count)
	for i := range blocks {
		blocks[i] = make([]byte, randomLength(r))
		for j := range blocks[i] {
			blocks[i][j] = byte(r.Uint32())
		}
	}
	return blocks
}

// checkSumMany compares the IDs of a batch with Sum one block at a time.
func checkSumMany(t *testing.T, name string, blocks [][]byte, ids []ID) {
	t.Helper()
	for i, b := range blocks {
		if want := Sum(b); ids[i] != want {
			lens := make([]int, len(blocks))
			for j := range blocks {
				lens[j] = len(blocks[j])
			}
			t.Fatalf("%s: block %d of %d (lengths %v): ID %v, want %v", name, i, len(blocks), lens, ids[i].Short(), want.Short())
		}
	}
}

// TestSumManyMatchesSum runs batches of 1 to 20 blocks of random, mixed
// lengths through SumMany and through the lane scheduler on every kernel,
// whatever its batch threshold.
func TestSumManyMatchesSum(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	rounds := 40
	if testing.Short() {
		rounds = 10
	}
	for range rounds {
		blocks := randomBlocks(r, 1+r.IntN(20))
		ids := make([]ID, len(blocks))
		SumMany(blocks, ids)
		checkSumMany(t, "SumMany", blocks, ids)
		for _, k := range laneKernels() {
			clear(ids)
			if next := sumLanes(k, blocks, ids); next != len(blocks) && len(blocks) >= k.MinBatch {
				t.Fatalf("%s: stopped at block %d of %d", k.Name, next, len(blocks))
			}
			sumMany(k, blocks, ids)
			checkSumMany(t, k.Name, blocks, ids)
		}
	}
}

// TestSumManyEqualLengths covers the batches a store verifies: equal
// lengths, at every batch size up to two kernels' worth of lanes, for
// every length mod 128 in a few chunks.
func TestSumManyEqualLengths(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, k := range laneKernels() {
		for n := 0; n < 3*chunk; n += 1 + r.IntN(5) {
			count := 1 + r.IntN(2*sha512x.MaxLanes)
			blocks := make([][]byte, count)
			for i := range blocks {
				blocks[i] = make([]byte, n)
				for j := range blocks[i] {
					blocks[i][j] = byte(r.Uint32())
				}
			}
			ids := make([]ID, count)
			sumMany(k, blocks, ids)
			checkSumMany(t, k.Name, blocks, ids)
		}
	}
}

// TestSumManyAliasedBlocks: blocks may share memory (prefixes of one
// buffer, the same slice twice).
func TestSumManyAliasedBlocks(t *testing.T) {
	buf := make([]byte, 5000)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	blocks := [][]byte{buf, buf[:4096], buf, buf[1:300], buf[:0], buf[4000:], buf[:4096], buf}
	for _, k := range laneKernels() {
		ids := make([]ID, len(blocks))
		sumMany(k, blocks, ids)
		checkSumMany(t, k.Name, blocks, ids)
	}
}

func TestSumManyPanicsOnLengthMismatch(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("SumMany with fewer IDs than blocks did not panic")
		}
	}()
	SumMany(make([][]byte, 3), make([]ID, 2))
}

// TestSumManyDoesNotAllocate: a batch of eight 4 KiB blocks (what a store
// verifies at once) costs no allocation.
func TestSumManyDoesNotAllocate(t *testing.T) {
	blocks := randomBlocks(rand.New(rand.NewPCG(9, 10)), 8)
	for i := range blocks {
		blocks[i] = make([]byte, 4096)
	}
	ids := make([]ID, len(blocks))
	if a := testing.AllocsPerRun(10, func() { SumMany(blocks, ids) }); a != 0 {
		t.Fatalf("SumMany allocates %v times per batch", a)
	}
}

// FuzzSumMany compares SumMany and the scheduler on every kernel with Sum
// for batches cut from the input: each pair of bytes of cuts picks a
// window of data (windows may overlap).
func FuzzSumMany(f *testing.F) {
	f.Add([]byte("flowmail"), []byte{0, 8, 1, 7})
	f.Add(make([]byte, 300), []byte{0, 111, 0, 112, 1, 128, 0, 255, 255, 255})
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		var blocks [][]byte
		for i := 0; i+1 < len(cuts) && len(blocks) < 20; i += 2 {
			lo := int(cuts[i]) * len(data) / 256
			hi := lo + int(cuts[i+1])*4
			blocks = append(blocks, data[lo:min(hi, len(data))])
		}
		ids := make([]ID, len(blocks))
		SumMany(blocks, ids)
		checkSumMany(t, "SumMany", blocks, ids)
		for _, k := range laneKernels() {
			clear(ids)
			sumMany(k, blocks, ids)
			checkSumMany(t, k.Name, blocks, ids)
		}
	})
}

func TestLanesMatchesKernel(t *testing.T) {
	want := 1
	if k := sha512x.Best(); k != nil {
		want = k.Lanes
	}
	if got := Lanes(); got != want || got < 1 || got > sha512x.MaxLanes {
		t.Fatalf("Lanes() = %d, want %d", got, want)
	}
}
