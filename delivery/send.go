package delivery

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
)

// SendOptions tune Send and Store.
type SendOptions struct {
	// Workers bounds the blocks stored at once; 0 means 8.
	Workers int
	// Progress, if set, is told how far the mail is (mail.Progress: the
	// build's grinding, and PhaseStore in message bytes whose data blocks
	// are stored), from one goroutine at a time.
	Progress func(mail.Progress)
	// ProgressInterval between grinding reports; 0 means 250 ms.
	ProgressInterval time.Duration
	// GrindWorkers bound the goroutines that hash and grind; 0 means
	// GOMAXPROCS.
	GrindWorkers int
	// State, if set, is the file that lets an interrupted Send resume
	// (docs/PROTOCOL.md 10.2): Send reads it if it exists, keeps it current, and
	// leaves it in place when it returns, done or not; the caller removes
	// it once the mail is sent.
	State string
}

// Send builds in and stores it (spec 9): each group's data blocks as soon
// as the group is coded, so the message is never held whole, then, once
// every data block is stored, the index blocks, so no recipient finds a
// mail whose body is not all there. The first failure stops it.
//
// With opt.State it resumes: the mail keeps the randomness and signing
// time of the interrupted send, data blocks already stored are not stored
// again, and index blocks already ground are not ground again. in.Rand
// and in.Now are then ignored.
func Send(ctx context.Context, net Network, c *mail.Codec, in mail.BuildInput, opt SendOptions) (*Sent, error) {
	if in.Lifetime == 0 {
		in.Lifetime = block.MaxLifetime
	}
	st, err := openSendState(opt.State, in)
	if err != nil {
		return nil, err
	}
	in.Now, in.Rand, in.Lifetime = st.signed(), st.rand(), st.lifetime()
	report := func(p mail.Progress) {
		if opt.Progress != nil {
			opt.Progress(p)
		}
	}
	reused := 0
	if st.ground() {
		// Resumed after the data was all stored.
		report(mail.Progress{Phase: mail.PhaseStore, Recipient: -1, Done: in.Size, Total: in.Size})
	} else {
		// Progress in message bytes: each group stands for its share of
		// the message, each stored block for its share of the group.
		// Done reaches Total once, when every data block is stored (the
		// grinding that follows tells).
		var mu sync.Mutex
		var base int64
		storeDone := false
		b, err := c.Build(ctx, in, mail.BuildOptions{
			Workers: opt.GrindWorkers, ProgressInterval: opt.ProgressInterval,
			Progress: func(p mail.Progress) {
				if p.Phase == mail.PhaseGrind {
					if !storeDone {
						storeDone = true
						report(mail.Progress{Phase: mail.PhaseStore, Recipient: -1, Done: in.Size, Total: in.Size})
					}
					report(p)
				}
			},
			Data: func(ctx context.Context, g int, blocks []mail.Block) error {
				var todo []mail.Block
				for _, x := range blocks {
					if !st.isStored(x.ID) {
						todo = append(todo, x)
					}
				}
				reused += len(blocks) - len(todo)
				share, done := groupBytes(in.Size, g), int64(len(blocks)-len(todo))
				err := storeData(ctx, net, todo, in.Lifetime, opt.Workers, func(id block.ID) {
					st.markStored(id)
					mu.Lock()
					defer mu.Unlock()
					done++
					report(mail.Progress{Phase: mail.PhaseStore, Recipient: -1, Done: min(in.Size-1, base+share*done/int64(len(blocks))), Total: in.Size})
				})
				base += share
				// Saved after each group and when the network fails, so a
				// Send stopped by an error or a signal loses no stored
				// block; a crash loses at most this group's.
				if serr := st.save(); err == nil {
					err = serr
				}
				return err
			},
		})
		if err != nil {
			return nil, err
		}
		b.Release()
		st.setIndex(b)
		if err := st.save(); err != nil {
			return nil, err
		}
	}
	for i := range st.j.Index {
		if st.j.Index[i].Stored {
			continue
		}
		if err := net.Put(ctx, st.idx[i], in.Lifetime); err != nil {
			return nil, fmt.Errorf("delivery: storing the index block for %s: %w", st.recipientName(i), err)
		}
		st.j.Index[i].Stored = true
		if err := st.save(); err != nil {
			return nil, err
		}
	}
	return st.sent(reused), nil
}

// groupBytes is about how many message bytes group g stands for, for
// progress: what a full group holds, or what is left.
func groupBytes(size int64, g int) int64 {
	const perGroup = mail.GroupDataShards * mail.MaxShardSize
	return max(0, min(perGroup, size-int64(g)*perGroup))
}

// Store stores a mail built in memory: every data block, then, once all
// of them are stored, every index block. The first failure stops it.
// Progress counts message bytes, as Send's does: the share of the blocks
// stored times the message's size.
func Store(ctx context.Context, net Network, b *mail.Built, opt SendOptions) error {
	blocks := int64(len(b.Data) + len(b.Index))
	size := max(b.Size, 1)
	var done atomic.Int64
	var mu sync.Mutex
	report := func(block.ID) {
		d := done.Add(1)
		if opt.Progress != nil {
			mu.Lock()
			opt.Progress(mail.Progress{Phase: mail.PhaseStore, Recipient: -1, Done: size * d / blocks, Total: size})
			mu.Unlock()
		}
	}
	if err := storeData(ctx, net, b.Data, b.Lifetime, opt.Workers, report); err != nil {
		return err
	}
	return storeAll(ctx, net, b.Index, b.Lifetime, opt.Workers, "index block", report)
}

// storeData stores data blocks as storeAll does, or together where the
// Network can (DataManyPutter).
func storeData(ctx context.Context, net Network, blocks []mail.Block, lifetime time.Duration, workers int, done func(block.ID)) error {
	many, ok := net.(DataManyPutter)
	if !ok || len(blocks) == 0 {
		return storeAll(ctx, net, blocks, lifetime, workers, "data block", done)
	}
	ids, bs := make([]block.ID, len(blocks)), make([][]byte, len(blocks))
	for i, x := range blocks {
		ids[i], bs[i] = x.ID, x.Bytes
	}
	var report func(int)
	if done != nil {
		report = func(i int) { done(ids[i]) }
	}
	if err := many.PutDataMany(ctx, ids, bs, lifetime, workersOr(workers, 8), report); err != nil {
		return fmt.Errorf("delivery: storing data blocks: %w", err)
	}
	return nil
}

// storeAll Puts blocks, at most workers at once, calling done after each.
func storeAll(ctx context.Context, net Network, blocks []mail.Block, lifetime time.Duration, workers int, what string, done func(block.ID)) error {
	put := func(ctx context.Context, x mail.Block) error { return net.Put(ctx, x.Bytes, lifetime) }
	if kp, ok := net.(KnownPutter); ok {
		put = func(ctx context.Context, x mail.Block) error { return kp.PutKnown(ctx, x.ID, x.Bytes, lifetime) }
	}
	return forEach(ctx, len(blocks), workersOr(workers, 8), func(ctx context.Context, i int) error {
		x := blocks[i]
		if err := put(ctx, x); err != nil {
			if !x.Recipient.IsZero() {
				return fmt.Errorf("delivery: storing the %s for %s: %w", what, identity.FormatAddress(x.Recipient), err)
			}
			return fmt.Errorf("delivery: storing %s %d of %d (%s): %w", what, i+1, len(blocks), x.ID.Short(), err)
		}
		if done != nil {
			done(x.ID)
		}
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

// ErrSendState reports a resume file that cannot be used: damaged, or
// written for another mail. It is left as it was.
var ErrSendState = errors.New("delivery: unusable send state")
