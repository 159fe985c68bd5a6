package pow

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowmail/flowmail/block"
)

// Progress is reported while Solve runs.
type Progress struct {
	Attempts uint64        // trials so far, all workers
	Elapsed  time.Duration // since Solve started
	Rate     float64       // trials per second so far
	Expected float64       // expected total trials, 2^bits
	Left     time.Duration // expected time to go at the current rate
}

// Options tune Solve.
type Options struct {
	// Workers is the number of goroutines grinding; 0 means GOMAXPROCS.
	Workers int
	// Progress, if set, is called from one goroutine every Interval.
	Progress func(Progress)
	// Interval between progress reports; 0 means 250 ms.
	Interval time.Duration
	// Start is the first nonce tried; workers take disjoint nonces from it.
	Start uint64
}

var (
	// ErrNoSolution is returned when every nonce was tried (only possible
	// with absurd difficulties; 2^64 trials take centuries).
	ErrNoSolution = errors.New("pow: nonce space exhausted")
	// ErrShortBlock: the block cannot hold its 8-byte nonce.
	ErrShortBlock = errors.New("pow: block shorter than its nonce")
	// ErrDifficulty: a difficulty outside 0..MaxBits.
	ErrDifficulty = errors.New("pow: difficulty outside 0..256")
)

// MaxBits is the largest difficulty: an ID has 256 bits.
const MaxBits = 8 * block.IDSize

// Verify reports whether blk (an index block, nonce included) shares at
// least bits leading bits with target.
func Verify(blk []byte, target block.ID, bits int) bool {
	if len(blk) < block.NonceSize || bits < 0 {
		return false
	}
	return block.CommonPrefixLen(block.Sum(blk), target) >= bits
}

// Solve finds a nonce for which Verify(blk, target, bits) holds, writes it
// into the last 8 bytes of blk and returns it. It stops with ctx.Err()
// when ctx is cancelled; every goroutine it starts has exited when it
// returns.
func Solve(ctx context.Context, blk []byte, target block.ID, bits int, opt Options) (uint64, error) {
	return solve(ctx, blk, target, bits, opt, config{})
}

// config holds what tests and benchmarks choose and Options does not offer.
type config struct {
	kernel string // a kernel by name; "" picks the fastest this CPU runs
	// batch, if set, is called by worker w before it grinds n nonces
	// from base.
	batch func(w int, base, n uint64)
}

// batchSize is how many nonces a worker tries between checks of ctx: small
// enough to stop within a millisecond, large enough to keep the check and
// each kernel call's set-up off the hot path.
const batchSize = 4096

// batches is how many batches the nonce space holds.
const batches = 1 << 64 / batchSize

func solve(ctx context.Context, blk []byte, target block.ID, bits int, opt Options, cfg config) (uint64, error) {
	if len(blk) < block.NonceSize {
		return 0, fmt.Errorf("%w: %d bytes", ErrShortBlock, len(blk))
	}
	if bits < 0 || bits > MaxBits {
		return 0, fmt.Errorf("%w: %d", ErrDifficulty, bits)
	}
	k := kernels()[0]
	if cfg.kernel != "" {
		var ok bool
		if k, ok = kernelByName(cfg.kernel); !ok {
			return 0, fmt.Errorf("pow: kernel %q not available on this machine", cfg.kernel)
		}
	}
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	interval := opt.Interval
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	t := newTail(blk)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		attempts atomic.Uint64
		result   uint64
		found    bool
		once     sync.Once
		wg       sync.WaitGroup
	)
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			g := newGrinder(t, k, target, bits)
			// Worker w takes batches w, w+workers, w+2·workers, ... of the
			// nonces from Start, so no two workers try the same nonce.
			for b := uint64(w); b < batches; b += uint64(workers) {
				if ctx.Err() != nil {
					return
				}
				base := opt.Start + b*batchSize
				if cfg.batch != nil {
					cfg.batch(w, base, batchSize)
				}
				n, tried, ok := g.search(base, batchSize)
				attempts.Add(tried)
				if ok {
					once.Do(func() { result, found = n, true })
					cancel()
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	tick := time.NewTicker(interval)
	defer tick.Stop()
	report := func() {
		if opt.Progress == nil {
			return
		}
		a := attempts.Load()
		el := time.Since(start)
		p := Progress{Attempts: a, Elapsed: el, Expected: math.Ldexp(1, bits)}
		if el > 0 {
			p.Rate = float64(a) / el.Seconds()
		}
		if p.Rate > 0 && p.Expected > float64(a) {
			p.Left = math.MaxInt64 // for difficulties beyond any lifetime
			if left := (p.Expected - float64(a)) / p.Rate * float64(time.Second); left < math.MaxInt64 {
				p.Left = time.Duration(left)
			}
		}
		opt.Progress(p)
	}
	for {
		select {
		case <-done:
			if !found {
				if err := ctx.Err(); err != nil {
					return 0, err
				}
				return 0, ErrNoSolution
			}
			binary.BigEndian.PutUint64(blk[len(blk)-block.NonceSize:], result)
			if !Verify(blk, target, bits) {
				return 0, fmt.Errorf("pow: internal error: kernel %s found nonce %d, which does not verify", k.name, result)
			}
			report()
			return result, nil
		case <-tick.C:
			report()
		}
	}
}
