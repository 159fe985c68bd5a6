package delivery

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
)

// SendOptions tune Send.
type SendOptions struct {
	// Workers bounds the blocks stored at once; 0 means 8.
	Workers int
	// Progress, if set, is called after each stored block (PhaseStore),
	// from one goroutine at a time.
	Progress func(mail.Progress)
}

// Send stores a built mail: every data block, then, once all of them are
// stored, every index block, so no recipient can find a mail whose body
// is not there yet. The first failure stops it.
func Send(ctx context.Context, net Network, b *mail.Built, opt SendOptions) error {
	// With one data shard the parity shards repeat it byte for byte (a
	// Reed-Solomon code of dimension 1 is a repetition code), so their
	// blocks share one ID: store each ID once.
	var data []mail.Block
	seen := make(map[block.ID]bool, len(b.Data))
	for _, d := range b.Data {
		if !seen[d.ID] {
			seen[d.ID] = true
			data = append(data, d)
		}
	}
	total := int64(len(data) + len(b.Index))
	var done atomic.Int64
	var mu sync.Mutex
	report := func() {
		d := done.Add(1)
		if opt.Progress != nil {
			mu.Lock()
			opt.Progress(mail.Progress{Phase: mail.PhaseStore, Recipient: -1, Done: d, Total: total})
			mu.Unlock()
		}
	}
	if err := forEach(ctx, len(data), workersOr(opt.Workers, 8), func(ctx context.Context, i int) error {
		if err := net.Put(ctx, data[i].Bytes, b.Lifetime); err != nil {
			return fmt.Errorf("delivery: storing data block %d of %d (%s): %w", i+1, len(data), data[i].ID.Short(), err)
		}
		report()
		return nil
	}); err != nil {
		return err
	}
	return forEach(ctx, len(b.Index), workersOr(opt.Workers, 8), func(ctx context.Context, i int) error {
		x := b.Index[i]
		if err := net.Put(ctx, x.Bytes, b.Lifetime); err != nil {
			return fmt.Errorf("delivery: storing the index block for %s: %w", identity.FormatAddress(x.Recipient), err)
		}
		report()
		return nil
	})
}

func workersOr(n, def int) int {
	if n > 0 {
		return n
	}
	return def
}

// forEach calls fn for 0..n-1 on at most workers goroutines and returns
// the first error, after cancelling the calls still running and waiting
// for every goroutine.
func forEach(ctx context.Context, n, workers int, fn func(context.Context, int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}
