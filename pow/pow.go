package pow

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
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

// ErrNoSolution is returned when every nonce was tried (only possible with
// absurd difficulties; 2^64 trials take centuries).
var ErrNoSolution = errors.New("pow: nonce space exhausted")

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
// when ctx is cancelled.
func Solve(ctx context.Context, blk []byte, target block.ID, bits int, opt Options) (uint64, error) {
	if len(blk) < block.NonceSize {
		return 0, fmt.Errorf("pow: block of %d bytes has no room for a nonce", len(blk))
	}
	if bits < 0 || bits > 256 {
		return 0, fmt.Errorf("pow: difficulty %d outside 0..256", bits)
	}
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	interval := opt.Interval
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	g := newGrinder(blk)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		attempts atomic.Uint64
		found    atomic.Bool
		result   uint64
		once     sync.Once
		wg       sync.WaitGroup
	)
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			// Worker w tries batches start+(i*workers+w)*batch... so no two
			// workers ever try the same nonce.
			for i := uint64(0); ; i++ {
				if ctx.Err() != nil {
					return
				}
				base := opt.Start + (i*uint64(workers)+uint64(w))*batchSize
				n, ok := g.search(base, batchSize, target, bits)
				attempts.Add(batchSize)
				if ok {
					once.Do(func() { result = n; found.Store(true) })
					cancel()
					return
				}
			}
		}(w)
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
		p := Progress{Attempts: a, Elapsed: el, Expected: float64(uint64(1) << min(bits, 63))}
		if el > 0 {
			p.Rate = float64(a) / el.Seconds()
		}
		if p.Rate > 0 && p.Expected > float64(a) {
			p.Left = time.Duration((p.Expected - float64(a)) / p.Rate * float64(time.Second))
		}
		opt.Progress(p)
	}
	for {
		select {
		case <-done:
			if found.Load() {
				report()
				binary.BigEndian.PutUint64(blk[len(blk)-block.NonceSize:], result)
				return result, nil
			}
			return 0, ctx.Err()
		case <-tick.C:
			report()
		}
	}
}

// batchSize is how many nonces a worker tries between checks of ctx: small
// enough to stop within a millisecond, large enough to keep the check off
// the hot path.
const batchSize = 4096
