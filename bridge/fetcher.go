package bridge

import (
	"context"
	"errors"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/mailbox"
)

// fetchLoop fetches the identity's mail from the network, as `flowmail
// fetch --watch` does, and renews its pubkey block daily. Each delivery
// syncs INBOX, which wakes the clients idling on it.
func (b *Bridge) fetchLoop(ctx context.Context) {
	every := b.cfg.FetchInterval
	if every <= 0 {
		every = time.Minute
	}
	t := b.clock.NewTicker(every)
	defer t.Stop()
	for {
		rep, err := b.fetchOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if b.cfg.OnFetch != nil {
			b.cfg.OnFetch(rep, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-b.fetchNow:
		}
	}
}

// ErrFetchBusy: another process (flowmail fetch) holds the processed set;
// the bridge fetches next time.
var ErrFetchBusy = errors.New("bridge: another fetch is running")

func (b *Bridge) fetchOnce(ctx context.Context) (*delivery.FetchReport, error) {
	if b.clock.Now().Sub(b.publishedPubkey) > 24*time.Hour {
		if err := b.cfg.Network.Put(ctx, b.me.Public().Block, block.MaxLifetime); err != nil {
			b.log.Warn("publishing the pubkey block", "err", err)
		} else {
			b.publishedPubkey = b.clock.Now()
		}
	}
	// The processed set is shared with `flowmail fetch` and held only for
	// a round, so both can run: the lock serializes their rounds, and a
	// mail is delivered by whichever lists it first.
	st, err := mailbox.OpenState(b.cfg.StateDir)
	if errors.Is(err, mailbox.ErrLocked) {
		return nil, ErrFetchBusy
	}
	if err != nil {
		return nil, err
	}
	defer st.Close()
	rep, err := delivery.Fetch(ctx, b.cfg.Network, b.fetchCodec, b.me, st, delivery.FetchOptions{
		Maildir: b.cfg.Maildir, Now: b.clock.Now(), Keep: b.cfg.Keep, Logger: b.log, KeyLogs: b.cfg.KeyLogs,
	})
	if in, serr := b.store.Folder(mailbox.Inbox); serr == nil {
		if serr := in.Sync(); serr != nil && err == nil {
			err = serr
		}
	}
	if err != nil {
		b.log.Warn("fetch", "err", err)
	}
	return rep, err
}
