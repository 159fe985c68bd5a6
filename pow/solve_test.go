package pow

import (
	"bytes"
	"context"
	"errors"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/internal/testseed"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestSolveFindsNonceVerifyAccepts grinds four random blocks of index and
// other lengths at every difficulty from 0 to 16 bits with every kernel: the
// nonce returned is in the block's last 8 bytes, Verify accepts the
// block, and nothing else in the block changed.
func TestSolveFindsNonceVerifyAccepts(t *testing.T) {
	r := testseed.Rand(t)
	for _, k := range kernels() {
		t.Run(k.name, func(t *testing.T) {
			for i := range 17 * 4 {
				bits := i / 4
				n := block.MinIndexSize + 128*r.IntN(4)
				if i%2 == 1 {
					n = 8 + r.IntN(400) // other layouts, two-compression tails
				}
				blk := randomBytes(r, n)
				orig := bytes.Clone(blk)
				target := randomID(r)
				opt := Options{Workers: 1 + r.IntN(3), Start: r.Uint64()}
				nonce, err := solve(t.Context(), blk, target, bits, opt, config{kernel: k.name})
				if err != nil {
					t.Fatalf("len %d, %d bits: %v", n, bits, err)
				}
				if !Verify(blk, target, bits) {
					t.Fatalf("len %d, %d bits: Verify rejects the solved block (nonce %#x)", n, bits, nonce)
				}
				if block.CommonPrefixLen(refID(blk), target) < bits {
					t.Fatalf("len %d, %d bits: the reference hash disagrees with Verify", n, bits)
				}
				if got := withNonce(blk, nonce); !bytes.Equal(got, blk) {
					t.Fatalf("returned nonce %#x is not the block's last 8 bytes %x", nonce, blk[n-8:])
				}
				if !bytes.Equal(blk[:n-8], orig[:n-8]) {
					t.Fatalf("Solve changed bytes before the nonce")
				}
			}
		})
	}
}

// TestSolveFromStartWithOneWorker pins the search order: one worker tries
// Start, Start+1, ... and so returns the first valid nonce from Start.
func TestSolveFromStartWithOneWorker(t *testing.T) {
	r := testseed.Rand(t)
	for range 5 {
		blk := randomBytes(r, block.MinIndexSize)
		target := randomID(r)
		start := r.Uint64()
		want, ok := firstValid(blk, start, 1<<16, target, 8)
		if !ok {
			t.Fatal("no 8-bit solution in 65536 nonces")
		}
		got, err := Solve(t.Context(), blk, target, 8, Options{Workers: 1, Start: start})
		if err != nil || got != want {
			t.Fatalf("got %#x, %v; want %#x", got, err, want)
		}
	}
	blk := randomBytes(r, 100)
	if got, err := Solve(t.Context(), blk, block.ID{}, 0, Options{Workers: 1, Start: 77}); err != nil || got != 77 {
		t.Fatalf("0 bits from 77: got %d, %v; want 77: every nonce meets 0 bits", got, err)
	}
}

// TestSolvePartitionsNonces records the batches each worker takes until
// cancelled: every batch is Start + k·batchSize, worker w takes k = w,
// w+workers, w+2·workers, ... in order with none skipped, so no nonce is
// given to two workers and none below the slowest worker's is left out.
// Start sits just below 2^64, so the batches wrap.
func TestSolvePartitionsNonces(t *testing.T) {
	const workers = 3
	start := uint64(math.MaxUint64 - 5*batchSize - 17)
	var mu sync.Mutex
	taken := make([][]uint64, workers)
	total := 0
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cfg := config{batch: func(w int, base, n uint64) {
		if n != batchSize {
			t.Errorf("batch of %d nonces, want %d", n, batchSize)
		}
		k := (base - start) / batchSize
		if base != start+k*batchSize {
			t.Errorf("worker %d took a batch at %#x, %d past a batch boundary", w, base, (base-start)%batchSize)
		}
		mu.Lock()
		defer mu.Unlock()
		taken[w] = append(taken[w], k)
		if total++; total == 60 {
			cancel()
		}
	}}
	_, err := solve(ctx, make([]byte, block.MinIndexSize), unreachable, MaxBits, Options{Workers: workers, Start: start}, cfg)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Solve: %v, want context.Canceled", err)
	}
	for w, ks := range taken {
		for i, k := range ks {
			if want := uint64(w + i*workers); k != want {
				t.Fatalf("worker %d took batches %v: number %d is %d, want %d", w, ks, i, k, want)
			}
		}
	}
}

func TestSolveDefaultsToEveryCore(t *testing.T) {
	var mu sync.Mutex
	seen := map[int]bool{}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	want := runtime.GOMAXPROCS(0)
	cfg := config{batch: func(w int, _, _ uint64) {
		mu.Lock()
		defer mu.Unlock()
		seen[w] = true
		if len(seen) == want {
			cancel()
		}
	}}
	if _, err := solve(ctx, make([]byte, 64), unreachable, MaxBits, Options{}, cfg); !errors.Is(err, context.Canceled) {
		t.Fatalf("Solve: %v", err)
	}
	if len(seen) != want {
		t.Fatalf("%d workers ground, want GOMAXPROCS = %d", len(seen), want)
	}
}

// TestSolveStopsOnCancel: at a difficulty no nonce meets, Solve returns
// context.Canceled once the caller cancels (from the progress callback,
// so no clock is involved), each worker taking at most the one batch it
// was starting (promptness counted in work, not time), and its goroutines
// are gone (TestMain checks).
func TestSolveStopsOnCancel(t *testing.T) {
	const workers = 2
	for _, k := range kernels() {
		t.Run(k.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var cancelled atomic.Bool
			var late atomic.Int64
			cfg := config{kernel: k.name, batch: func(int, uint64, uint64) {
				if cancelled.Load() {
					late.Add(1)
				}
			}}
			opt := Options{Workers: workers, Interval: time.Millisecond, Progress: func(Progress) {
				cancel()
				cancelled.Store(true)
			}}
			blk := make([]byte, block.MinIndexSize)
			_, err := solve(ctx, blk, unreachable, MaxBits, opt, cfg)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Solve: %v, want context.Canceled", err)
			}
			if n := late.Load(); n > workers {
				t.Fatalf("%d batches taken after cancel by %d workers", n, workers)
			}
			if !bytes.Equal(blk, make([]byte, block.MinIndexSize)) {
				t.Fatal("a cancelled Solve wrote into the block")
			}
		})
	}
}

func TestSolveReturnsAtOnceWhenAlreadyCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var batches atomic.Int64
	cfg := config{batch: func(int, uint64, uint64) { batches.Add(1) }}
	if _, err := solve(ctx, make([]byte, 64), unreachable, MaxBits, Options{}, cfg); !errors.Is(err, context.Canceled) {
		t.Fatalf("Solve: %v", err)
	}
	if n := batches.Load(); n != 0 {
		t.Fatalf("%d batches ground after cancellation", n)
	}
}

// TestSolveReportsProgress: reports come from one goroutine at a time,
// attempts never go down and do go up, and rate, expected work and time
// left are filled in.
func TestSolveReportsProgress(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var (
		inside  atomic.Bool
		reports []Progress
	)
	opt := Options{Workers: 2, Interval: time.Millisecond, Progress: func(p Progress) {
		if !inside.CompareAndSwap(false, true) {
			t.Error("progress callbacks overlap")
		}
		defer inside.Store(false)
		reports = append(reports, p)
		if len(reports) >= 3 && p.Attempts > reports[0].Attempts {
			cancel()
		}
	}}
	const bits = 200
	if _, err := Solve(ctx, make([]byte, block.MinIndexSize), unreachable, bits, opt); !errors.Is(err, context.Canceled) {
		t.Fatalf("Solve: %v", err)
	}
	for i, p := range reports {
		if i > 0 && (p.Attempts < reports[i-1].Attempts || p.Elapsed < reports[i-1].Elapsed) {
			t.Fatalf("report %d went backwards: %+v after %+v", i, p, reports[i-1])
		}
		if p.Expected != math.Ldexp(1, bits) {
			t.Fatalf("Expected = %g, want 2^%d", p.Expected, bits)
		}
	}
	last := reports[len(reports)-1]
	if last.Attempts <= reports[0].Attempts || last.Rate <= 0 || last.Left <= 0 {
		t.Fatalf("last report %+v: attempts did not grow, or no rate or time left", last)
	}
}

// TestSolveReportsOnSuccess: the final report counts the work done.
func TestSolveReportsOnSuccess(t *testing.T) {
	var last Progress
	opt := Options{Workers: 1, Progress: func(p Progress) { last = p }}
	if _, err := Solve(t.Context(), make([]byte, 300), block.ID{1}, 6, opt); err != nil {
		t.Fatal(err)
	}
	if last.Attempts == 0 || last.Expected != 64 {
		t.Fatalf("final report %+v", last)
	}
}

func TestSolveRejectsBadInput(t *testing.T) {
	cases := []struct {
		name string
		blk  []byte
		bits int
		cfg  config
	}{
		{name: "block shorter than a nonce", blk: make([]byte, 7), bits: 1},
		{name: "empty block", blk: nil, bits: 0},
		{name: "negative difficulty", blk: make([]byte, 64), bits: -1},
		{name: "difficulty over 256", blk: make([]byte, 64), bits: 257},
		{name: "unknown kernel", blk: make([]byte, 64), bits: 1, cfg: config{kernel: "quantum"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := solve(t.Context(), c.blk, block.ID{}, c.bits, Options{}, c.cfg); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestVerifyRejectsBadInput(t *testing.T) {
	blk := make([]byte, 64)
	id := refID(blk)
	if !Verify(blk, id, 256) {
		t.Fatal("a block does not meet its own ID at 256 bits")
	}
	if Verify(blk, id, 257) || Verify(blk, id, -1) || Verify(blk[:7], id, 0) {
		t.Fatal("Verify accepts a difficulty outside 0..256 or a block without a nonce")
	}
}
