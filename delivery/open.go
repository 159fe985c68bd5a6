package delivery

import (
	"context"
	"fmt"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
)

// Mail is a mail opened from the network and verified.
type Mail struct {
	*mail.Mail
	Index    block.ID // the index block it came in
	Manifest *mail.Manifest
}

// OpenOptions tune Open.
type OpenOptions struct {
	// Workers bounds the shards fetched at once; 0 means 8.
	Workers int
	// Now is the current time, for the staleness check; zero skips it.
	Now time.Time
	// Progress, if set, is told how many of the needed shards have
	// arrived intact: once before the first request, then after each.
	// Calls come from one goroutine.
	Progress func(ShardProgress)
}

// ShardProgress is where the download of one mail's shards stands.
type ShardProgress struct {
	Done      int // shards arrived intact
	Needed    int // shards needed to rebuild the mail
	ShardSize int // bytes per shard
}

// Open opens the index block blk, listed under id, for me, fetches
// enough of its shards from net, and makes every check of spec 6 and 9
// (mail.OpenIndex, mail.ShardPayload, Codec.OpenBody). A mail sealed to
// someone else gives an error matching identity.ErrNotForMe.
func Open(ctx context.Context, net Network, c *mail.Codec, me *identity.Identity, id block.ID, blk []byte, opt OpenOptions) (*Mail, error) {
	man, err := mail.OpenIndex(me, id, blk)
	if err != nil {
		return nil, err
	}
	payloads, err := fetchShards(ctx, net, man, workersOr(opt.Workers, 8), opt.Progress)
	if err != nil {
		return nil, err
	}
	m, err := c.OpenBody(me, man, payloads, opt.Now)
	if err != nil {
		return nil, err
	}
	return &Mail{Mail: m, Index: id, Manifest: man}, nil
}

// fetchShards gets shards until k of them verify: the k data shards first
// and a parity shard for each that fails, at most workers at once. A
// shard that fails mail.ShardPayload counts as missing. The result has
// the payloads in coding order, nil where missing. report may be nil.
func fetchShards(ctx context.Context, net Network, man *mail.Manifest, workers int, report func(ShardProgress)) ([][]byte, error) {
	progress := func(done, needed int) {
		if report != nil {
			report(ShardProgress{Done: done, Needed: needed, ShardSize: man.ShardSize})
		}
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	k, n := man.DataShards, len(man.ShardIDs)
	type result struct {
		i   int
		p   []byte
		err error
	}
	results := make(chan result, n) // room for every shard: senders never block
	payloads := make([][]byte, n)
	next, inflight, have := 0, 0, 0
	var firstErr error
	progress(0, k)
	for have < k {
		for inflight < workers && next < n && have+inflight < k {
			go func(i int) {
				p, err := fetchShard(fctx, net, man, i)
				results <- result{i, p, err}
			}(next)
			next++
			inflight++
		}
		if inflight == 0 {
			break
		}
		r := <-results
		inflight--
		if r.err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("shard %d: %w", r.i, r.err)
			}
			continue
		}
		payloads[r.i] = r.p
		have++
		progress(have, k)
	}
	cancel()
	for ; inflight > 0; inflight-- {
		<-results // every goroutine has ended when its result is taken
	}
	if have < k {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %d of the %d needed arrived intact from %d shards (%v)", mail.ErrShardsMissing, have, k, n, firstErr)
	}
	return payloads, nil
}

func fetchShard(ctx context.Context, net Network, man *mail.Manifest, i int) ([]byte, error) {
	b, err := net.Get(ctx, man.ShardIDs[i])
	if err != nil {
		return nil, err
	}
	return mail.ShardPayload(man, i, b)
}
