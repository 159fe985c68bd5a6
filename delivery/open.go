package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/atomicfile"
	"github.com/flowmail/flowmail/mail"
)

// openOptions tune how one mail is opened.
type openOptions struct {
	// Workers bounds the shards fetched at once; 0 means 8.
	Workers int
	// Now is the current time, for the staleness check; zero skips it.
	Now time.Time
	// Progress, if set, is told how many of the needed shards have
	// arrived intact: once before the first request, then after each.
	// Calls come from one goroutine.
	Progress func(ShardProgress)
	// ShardCache, if set, is a directory where the shards of big mails
	// are kept as they arrive, so that a fetch that is interrupted or
	// that finds too few shards for now gets only the missing ones next
	// time.
	ShardCache string
}

// ShardProgress is where the download of one mail's shards stands.
type ShardProgress struct {
	Done       int   // data shards at hand, fetched or found in the cache
	Needed     int   // shards needed to rebuild the mail: every group's k
	Bytes      int64 // their payload bytes
	TotalBytes int64 // the payload bytes of every needed shard
}

// openTo opens the index block blk, listed under id, for me, fetches
// enough of its shards from net group by group, and makes every check of
// spec 6 and 9 (mail.OpenIndex, mail.ShardPayload, Codec.OpenBody),
// streaming the message into out. A mail sealed to someone else gives an
// error matching identity.ErrNotForMe.
func openTo(ctx context.Context, net Network, c *mail.Codec, me *identity.Identity, id block.ID, blk []byte, out io.Writer, opt openOptions) (*mail.Opened, *mail.Manifest, error) {
	man, err := mail.OpenIndex(me, id, blk)
	if err != nil {
		return nil, nil, err
	}
	return openManifestTo(ctx, net, c, me, id, man, out, opt)
}

// openManifestTo is openTo once the manifest is open (checkIndex).
func openManifestTo(ctx context.Context, net Network, c *mail.Codec, me *identity.Identity, id block.ID, man *mail.Manifest, out io.Writer, opt openOptions) (*mail.Opened, *mail.Manifest, error) {
	f := &groupFetcher{net: net, man: man, workers: workersOr(opt.Workers, 8), report: opt.Progress}
	if opt.ShardCache != "" && man.Layout.DataBytes() >= cacheFrom {
		f.cache = cacheDir(opt.ShardCache, id)
	}
	f.progress()
	o, err := c.OpenBody(ctx, me, man, f.shards, out, opt.Now)
	if err != nil {
		return nil, man, err
	}
	return o, man, nil
}

// cacheFrom is the size from which a mail's shards are kept in the shard
// cache: smaller mails are fetched again whole in less time than a
// directory of files costs.
const cacheFrom = 1 << 20

// cacheDir is where the shards of the mail with index block id are kept.
func cacheDir(root string, id block.ID) string { return filepath.Join(root, id.String()) }

// groupFetcher gets the shards of one mail group by group, for
// Codec.OpenBody.
type groupFetcher struct {
	net     Network
	man     *mail.Manifest
	workers int
	cache   string // "" for none
	report  func(ShardProgress)
	done    int
	bytes   int64
}

func (f *groupFetcher) progress() {
	if f.report == nil {
		return
	}
	l := f.man.Layout
	needed := (l.Groups-1)*mail.GroupDataShards + l.Last.Data
	f.report(ShardProgress{Done: f.done, Needed: needed, Bytes: f.bytes, TotalBytes: l.DataBytes()})
}

// shards gets group g's shards until k of them verify: those in the
// cache first, then the data shards and a parity shard for each that
// fails, at most workers at once. A shard that fails mail.ShardPayload
// counts as missing (spec 9.5).
func (f *groupFetcher) shards(ctx context.Context, g int) ([][]byte, error) {
	gl, first := f.man.Layout.Group(g), f.man.Layout.FirstShard(g)
	n, k := gl.Shards(), gl.Data
	payloads := make([][]byte, n)
	have := 0
	got := func(i int, p []byte) {
		payloads[i] = p
		have++
		f.done++
		f.bytes += int64(gl.ShardSize)
		f.progress()
	}
	if f.cache != "" {
		for i, p := range f.cached(g) {
			if p != nil && have < k {
				got(i, p)
			}
		}
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		i   int
		p   []byte
		err error
	}
	results := make(chan result, n) // room for every shard: senders never block
	next, inflight := 0, 0
	var firstErr error
	for have < k {
		for inflight < f.workers && next < n && have+inflight < k {
			if payloads[next] == nil {
				go func(i int) {
					p, err := f.fetch(fctx, first+i)
					results <- result{i, p, err}
				}(next)
				inflight++
			}
			next++
		}
		if inflight == 0 {
			break
		}
		r := <-results
		inflight--
		if r.err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("shard %d: %w", first+r.i, r.err)
			}
			continue
		}
		got(r.i, r.p)
	}
	cancel()
	for ; inflight > 0; inflight-- {
		<-results // every goroutine has ended when its result is taken
	}
	if have < k {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: group %d: %d of the %d needed arrived intact from %d shards (%v)", mail.ErrShardsMissing, g, have, k, n, firstErr)
	}
	return payloads, nil
}

// fetch gets shard i (over all groups) from the network, checks it, and
// keeps it in the cache.
func (f *groupFetcher) fetch(ctx context.Context, i int) ([]byte, error) {
	b, err := f.net.Get(ctx, f.man.ShardIDs[i])
	if err != nil {
		return nil, err
	}
	p, err := mail.ShardPayload(f.man, i, b)
	if err != nil {
		return nil, err
	}
	if f.cache != "" {
		// A shard that cannot be kept is fetched again next time; the
		// mail itself goes on.
		if os.MkdirAll(f.cache, 0o700) == nil {
			_ = atomicfile.Write(filepath.Join(f.cache, f.man.ShardIDs[i].String()), b, 0o600)
		}
	}
	return p, nil
}

// cached returns the payloads of group g's shards found in the cache, in
// coding order, nil where missing. A file that does not check out (cut
// short by a crash, damaged on disk) is removed.
func (f *groupFetcher) cached(g int) [][]byte {
	ids := f.man.GroupShards(g)
	blocks := make([][]byte, len(ids))
	for i, id := range ids {
		if b, err := atomicfile.ReadBounded(filepath.Join(f.cache, id.String()), block.MaxBlockSize); err == nil {
			blocks[i] = b
		}
	}
	payloads := mail.GroupPayloads(f.man, g, blocks)
	for i, p := range payloads {
		if p == nil && blocks[i] != nil {
			os.Remove(filepath.Join(f.cache, ids[i].String()))
		}
	}
	return payloads
}

// dropCache removes the cached shards of the mail with index block id.
func dropCache(root string, id block.ID) error {
	if root == "" {
		return nil
	}
	if err := os.RemoveAll(cacheDir(root, id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
