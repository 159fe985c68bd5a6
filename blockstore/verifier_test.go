package blockstore

import (
	"errors"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flowmail/flowmail/block"
)

// checkCase is a block, the ID asked for and whether they match.
type checkCase struct {
	b    []byte
	id   block.ID
	good bool
}

// checkCases returns n cases of random lengths up to 8 KiB; about one in
// four asks for the wrong ID (a flipped byte, another block's ID).
func checkCases(r *rand.Rand, n int) []checkCase {
	cs := make([]checkCase, n)
	for i := range cs {
		b := make([]byte, r.IntN(8<<10))
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		cs[i] = checkCase{b: b, id: block.Sum(b), good: true}
	}
	for i := range cs {
		switch r.IntN(8) {
		case 0:
			cs[i].id = cs[(i+1)%n].id
			cs[i].good = len(cs) == 1 || string(cs[i].b) == string(cs[(i+1)%n].b)
		case 1:
			cs[i].id[r.IntN(block.IDSize)] ^= 1 << r.IntN(8)
			cs[i].good = false
		}
	}
	return cs
}

// TestVerifierBatchesQueuedChecks steps the verifier through its cases
// with every hash held until the test lets it go: a lone check hashes
// alone; checks that find it hashing queue; the one that fills a batch
// hashes the batch beside it; more queue; the lone hash ends and leaves
// them to the other hasher, which, when done, hands its role to the
// oldest of them, to hash them all; every verdict is Sum's.
func TestVerifierBatchesQueuedChecks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var sizes []int
		gates := []chan struct{}{make(chan struct{}), make(chan struct{}), make(chan struct{})}
		v := newVerifier(func(blocks [][]byte, ids []block.ID) {
			mu.Lock()
			i := len(sizes)
			sizes = append(sizes, len(blocks))
			mu.Unlock()
			<-gates[i]
			block.SumMany(blocks, ids)
		}, 8)
		cs := checkCases(rand.New(rand.NewPCG(1, 2)), 13)
		got := make([]bool, len(cs))
		var wg sync.WaitGroup
		start := func(from, to int) {
			for i := from; i < to; i++ {
				wg.Go(func() { got[i] = v.verify(cs[i].b, cs[i].id) })
			}
			synctest.Wait()
		}
		expect := func(step string, queued, hashers int, batches ...int) {
			t.Helper()
			mu.Lock()
			defer mu.Unlock()
			if v.waiting() != queued || v.hashers != hashers || !slices.Equal(sizes, batches) {
				t.Fatalf("%s: %d queued, %d hashers, batches %v; want %d, %d, %v", step, v.waiting(), v.hashers, sizes, queued, hashers, batches)
			}
		}
		start(0, 1)
		expect("a lone check", 0, 1, 1)
		start(1, 8)
		expect("seven more", 7, 1, 1)
		start(8, 9)
		expect("the eighth", 0, 2, 1, 8)
		start(9, 13)
		expect("four more", 4, 2, 1, 8)
		close(gates[0])
		synctest.Wait()
		expect("the lone hash done", 4, 1, 1, 8)
		close(gates[1])
		synctest.Wait()
		expect("the batch of eight done", 0, 1, 1, 8, 4)
		close(gates[2])
		wg.Wait()
		expect("all done", 0, 0, 1, 8, 4)
		for i, c := range cs {
			if got[i] != c.good {
				t.Errorf("check %d (%d bytes): verdict %v, want %v", i, len(c.b), got[i], c.good)
			}
		}
	})
}

// TestVerifierVerdictsUnderLoad: many goroutines verifying at once, with
// the real SumMany and lane count, each get the verdict Sum gives.
func TestVerifierVerdictsUnderLoad(t *testing.T) {
	cs := checkCases(rand.New(rand.NewPCG(3, 4)), 200)
	v := newVerifier(block.SumMany, max(block.Lanes(), 2))
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 5))
			for range 50 {
				c := cs[r.IntN(len(cs))]
				if got := v.verify(c.b, c.id); got != c.good {
					t.Errorf("%d bytes: verdict %v, want %v", len(c.b), got, c.good)
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d of %d checks went through %d batches", v.batched.Load(), 32*50, v.batches.Load())
}

// TestCorruptBlockCaughtInABatch: one corrupted block among good ones
// read concurrently is verified in a full batch with them and dropped
// exactly as when read alone; the good ones come back intact. A first Get
// holds its lone hash until the 16 others are done: in two groups, seven
// queue and the eighth hashes the batch.
func TestCorruptBlockCaughtInABatch(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir, Config{})
	ctx := t.Context()
	fx := newFixtures(16)
	var blocks [][]byte
	var ids []block.ID
	for range 17 {
		b, _ := fx.data(4096)
		id, err := s.Put(ctx, b, time.Hour, PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		blocks, ids = append(blocks, b), append(ids, id)
	}
	const bad = 11
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rewriteRaw(t, dir, idKey(familyBlock, ids[bad]), func(v []byte) []byte { v[len(v)-100] ^= 4; return v })
	s = openDir(t, dir, Config{})

	// Eight lanes whatever this machine has (SumMany takes any batch).
	entered, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var sizes []int
	s.(*badgerStore).verifier = newVerifier(func(bs [][]byte, out []block.ID) {
		mu.Lock()
		first := len(sizes) == 0
		sizes = append(sizes, len(bs))
		mu.Unlock()
		if first {
			close(entered)
			<-release
		}
		block.SumMany(bs, out)
	}, 8)
	errs := make([]error, len(ids))
	got := make([][]byte, len(ids))
	get := func(i int) { got[i], _, errs[i] = s.Get(ctx, ids[i]) }
	var lone sync.WaitGroup
	lone.Go(func() { get(0) })
	<-entered
	vf := s.(*badgerStore).verifier
	for _, first := range []int{1, 9} {
		var group sync.WaitGroup
		for i := first; i < first+7; i++ {
			group.Go(func() { get(i) })
		}
		for vf.waiting() < 7 {
			runtime.Gosched() // they read Badger, then queue
		}
		group.Go(func() { get(first + 7) })
		group.Wait()
	}
	close(release)
	lone.Wait()

	for i := range ids {
		switch {
		case i == bad:
			if !errors.Is(errs[i], ErrCorrupt) || !errors.Is(errs[i], ErrNotFound) || got[i] != nil {
				t.Errorf("corrupted block: %d bytes, err %v; want ErrCorrupt and ErrNotFound", len(got[i]), errs[i])
			}
		case errs[i] != nil || string(got[i]) != string(blocks[i]):
			t.Errorf("block %d: %d bytes, err %v; want it intact", i, len(got[i]), errs[i])
		}
	}
	if !slices.Equal(sizes, []int{1, 8, 8}) {
		t.Errorf("batch sizes %v, want [1 8 8]", sizes)
	}
	if st := s.Stats(); st.Corrupt != 1 || st.Blocks != len(ids)-1 {
		t.Errorf("stats %+v, want 1 corrupt and %d blocks", st, len(ids)-1)
	}
	if _, _, err := s.Get(ctx, ids[bad]); !errors.Is(err, ErrNotFound) || errors.Is(err, ErrCorrupt) {
		t.Errorf("Get after the drop: %v, want plain ErrNotFound", err)
	}
}
