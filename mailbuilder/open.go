package mailbuilder

import (
	"context"
	"fmt"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

// Mail is an opened and verified mail.
type Mail struct {
	Index    block.ID // the index block it came in
	Envelope *Envelope
	Sender   *identity.PublicKey // verified; Envelope's signer
	Manifest *Manifest
}

// Message returns the RFC 5322 bytes, exactly as the sender signed them.
func (m *Mail) Message() []byte { return m.Envelope.Message }

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

// Open opens the index block blk, listed under id, for me, and makes every
// check of spec 6 and 9: the block hashes to id, its ID carries my proof of
// work, the manifest opens and is well formed, enough shards that hash to
// their IDs arrive to rebuild the body, the body decrypts and decompresses
// within bounds, and the envelope verifies for me. A mail sealed to
// someone else gives an error matching identity.ErrNotForMe.
func (c *Codec) Open(ctx context.Context, net Network, me *identity.Identity, id block.ID, blk []byte, opt OpenOptions) (*Mail, error) {
	if got := block.Sum(blk); got != id {
		return nil, fmt.Errorf("%w: listed as %s, its bytes hash to %s", ErrIndexBlock, id.Short(), got.Short())
	}
	if cpl, d := block.CommonPrefixLen(id, me.ID()), me.Difficulty(); cpl < d {
		return nil, fmt.Errorf("%w: its ID shares %d leading bits with %s, %d demanded", ErrProofOfWork, cpl, me.Address(), d)
	}
	x, err := block.ParseIndex(blk)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIndexBlock, err)
	}
	plain, err := me.Open(block.LabelIndex, x.Sealed)
	if err != nil {
		return nil, err
	}
	man, err := DecodeManifest(plain)
	if err != nil {
		return nil, err
	}
	payloads, err := fetchShards(ctx, net, man, workersOr(opt.Workers, 8), opt.Progress)
	if err != nil {
		return nil, err
	}
	z, buf, err := c.decode(man, payloads)
	if err != nil {
		return nil, err
	}
	envelope, err := c.decompress(z)
	c.putBuf(buf)
	if err != nil {
		return nil, err
	}
	env, sender, err := OpenEnvelope(envelope, me.ID())
	if err != nil {
		return nil, err
	}
	if !opt.Now.IsZero() && env.Time.Before(opt.Now.Add(-replayWindow)) {
		return nil, fmt.Errorf("%w: signed on %s, before any block still alive was stored: a replay", ErrStale, env.Time.UTC().Format(time.DateOnly))
	}
	return &Mail{Index: id, Envelope: env, Sender: sender, Manifest: man}, nil
}

// fetchShards gets shards until k of them verify: the k data shards first
// and a parity shard for each that fails, at most workers at once. A
// shard that does not hash to its ID, is not a data block, or has the
// wrong size counts as missing (spec 9.5). The result has the payloads in
// coding order, nil where missing. progress may be nil.
func fetchShards(ctx context.Context, net Network, man *Manifest, workers int, report func(ShardProgress)) ([][]byte, error) {
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
				p, err := fetchShard(fctx, net, man.ShardIDs[i], man.ShardSize)
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
		return nil, fmt.Errorf("%w: %d of the %d needed arrived intact from %d shards (%v)", ErrShardsMissing, have, k, n, firstErr)
	}
	return payloads, nil
}

func fetchShard(ctx context.Context, net Network, id block.ID, size int) ([]byte, error) {
	b, err := net.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if got := block.Sum(b); got != id {
		return nil, fmt.Errorf("block %s hashes to %s", id.Short(), got.Short())
	}
	d, err := block.ParseData(b)
	if err != nil {
		return nil, err
	}
	if len(d.Payload) != size {
		return nil, fmt.Errorf("payload of %d bytes, the manifest says %d", len(d.Payload), size)
	}
	return d.Payload, nil
}
