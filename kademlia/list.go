package kademlia

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/blockstore"
	"github.com/flowmail/flowmail/transport"
)

// ErrListIncomplete is wrapped by List when it could not reach every node
// of a crowded prefix; the entries it returns are still valid.
var ErrListIncomplete = errors.New("kademlia: listing incomplete")

// Bounds of one List: pages per node (each up to MaxListEntries), and the
// lookups a prefix sweep may spend (each finds up to K nodes of it).
const (
	maxListPages    = 64
	maxSweepLookups = 64
	listParallelism = K
	maxPrefixBits   = 255 // LIST carries bits in a u8
)

// List collects the index blocks whose IDs share at least bits leading
// bits with target and that were stored at or after since, from the K
// nodes closest to target (and the own store). When all K of those share
// at least bits with target the prefix holds more nodes, and List sweeps
// it: it finds every node of the prefix (docs/PROTOCOL.md section 8) and
// lists each. Entries come in ascending ID order, each with the earliest
// stored_at any node reported.
func (d *DHT) List(ctx context.Context, target block.ID, bits int, since time.Time) ([]blockstore.ListEntry, error) {
	if bits < 0 || bits > maxPrefixBits {
		return nil, fmt.Errorf("kademlia: list prefix of %d bits, want 0 to %d", bits, maxPrefixBits)
	}
	if since.Unix() < 0 {
		since = time.Unix(0, 0)
	}
	since = time.Unix(since.Unix(), 0)
	col := &listCollector{target: target, bits: bits, since: since, entries: make(map[block.ID]time.Time)}
	var errs []error
	sources := 0
	if d.cfg.Store != nil {
		if err := col.fromStore(ctx, d.cfg.Store); err != nil {
			errs = append(errs, fmt.Errorf("local store: %w", err))
		} else {
			sources++
		}
	}
	nodes, _, lerr := d.Lookup(ctx, target)
	if lerr != nil {
		errs = append(errs, lerr)
	}
	if len(nodes) == d.cfg.K && allShare(nodes, target, bits) {
		swept, serr := d.nodesInPrefix(ctx, target, bits, nodes)
		if serr != nil {
			errs = append(errs, serr)
		}
		nodes = swept
	}
	ok, failed := d.listAll(ctx, nodes, col)
	sources += ok
	errs = append(errs, failed...)
	out := col.sorted()
	switch {
	case ctx.Err() != nil:
		return out, ctx.Err()
	case sources == 0:
		return nil, fmt.Errorf("kademlia: no node answered LIST: %w", errors.Join(errs...))
	case len(failed) > 0 || lerr != nil:
		d.log.Debug("kademlia: some nodes did not answer LIST", "target", target.Short(), "answered", ok, "failed", len(failed))
	}
	var incomplete error
	for _, e := range errs {
		if errors.Is(e, ErrListIncomplete) {
			incomplete = e
		}
	}
	return out, incomplete
}

func allShare(cs []transport.Contact, target block.ID, bits int) bool {
	for _, c := range cs {
		if block.CommonPrefixLen(c.ID, target) < bits {
			return false
		}
	}
	return true
}

// listCollector merges the listings of many nodes, checking that each
// entry is one the request asked for.
type listCollector struct {
	target block.ID
	bits   int
	since  time.Time

	mu      sync.Mutex
	entries map[block.ID]time.Time // earliest stored_at reported
}

func (col *listCollector) add(id block.ID, storedAt time.Time) {
	col.mu.Lock()
	defer col.mu.Unlock()
	if at, ok := col.entries[id]; !ok || storedAt.Before(at) {
		col.entries[id] = storedAt
	}
}

func (col *listCollector) sorted() []blockstore.ListEntry {
	col.mu.Lock()
	defer col.mu.Unlock()
	out := make([]blockstore.ListEntry, 0, len(col.entries))
	for id, at := range col.entries {
		out = append(out, blockstore.ListEntry{ID: id, StoredAt: at})
	}
	slices.SortFunc(out, func(a, b blockstore.ListEntry) int { return CompareDistance(a.ID, b.ID, block.ID{}) })
	return out
}

func (col *listCollector) fromStore(ctx context.Context, s blockstore.Store) error {
	var after *block.ID
	for range maxListPages {
		entries, more, err := s.List(ctx, col.target, col.bits, col.since, after, MaxListEntries)
		if err != nil {
			return err
		}
		for _, e := range entries {
			col.add(e.ID, e.StoredAt)
		}
		if !more || len(entries) == 0 {
			return nil
		}
		last := entries[len(entries)-1].ID
		after = &last
	}
	return nil
}

// listAll lists at every node, listParallelism at a time, and returns
// how many answered and the errors of the others.
func (d *DHT) listAll(ctx context.Context, nodes []transport.Contact, col *listCollector) (int, []error) {
	return fanOutLimited(ctx, nodes, listParallelism, func(ctx context.Context, c transport.Contact) error {
		return d.listAt(ctx, c, col)
	})
}

// listAt pages through one node's listing with the after cursor. A node
// that lists an entry out of order, outside the prefix or before since,
// or more than maxListPages pages, is a bad source: none of its entries
// are kept. One lying node must neither flood the result nor, by always
// saying "more", make the whole List incomplete.
func (d *DHT) listAt(ctx context.Context, c transport.Contact, col *listCollector) error {
	req := List{Target: col.target, Bits: uint8(col.bits), Since: uint64(col.since.Unix()), Limit: MaxListEntries}
	type entry struct {
		id block.ID
		at time.Time
	}
	var got []entry
	for range maxListPages {
		resp, err := expect[Listed](d.request(ctx, c, req))
		if err != nil {
			return err
		}
		for _, e := range resp.Entries {
			storedAt := time.Unix(int64(min(e.StoredAt, uint64(1)<<62)), 0)
			switch {
			case req.HasAfter && !block.Less(req.After, e.ID):
				return fmt.Errorf("%w: LISTED from %v is not in ascending order after the cursor", ErrBadReply, c.ID.Short())
			case block.CommonPrefixLen(e.ID, col.target) < col.bits:
				return fmt.Errorf("%w: LISTED from %v holds %v outside the prefix", ErrBadReply, c.ID.Short(), e.ID.Short())
			case storedAt.Before(col.since):
				return fmt.Errorf("%w: LISTED from %v holds an entry stored before since", ErrBadReply, c.ID.Short())
			}
			got = append(got, entry{e.ID, storedAt})
			req.HasAfter, req.After = true, e.ID
		}
		if !resp.More {
			for _, e := range got {
				col.add(e.id, e.at)
			}
			return nil
		}
		if len(resp.Entries) == 0 {
			return fmt.Errorf("%w: LISTED from %v says more but lists nothing", ErrBadReply, c.ID.Short())
		}
	}
	return fmt.Errorf("%w: %v listed more than %d pages; its entries are dropped", ErrBadReply, c.ID.Short(), maxListPages)
}

// prefixRegion is the set of IDs that share bits leading bits with
// prefix.
type prefixRegion struct {
	prefix block.ID
	bits   int
}

// split returns the two halves of r.
func (r prefixRegion) split() (prefixRegion, prefixRegion) {
	lo, hi := r.prefix, r.prefix
	i, bit := r.bits/8, byte(0x80)>>(r.bits%8)
	lo[i] &^= bit
	hi[i] |= bit
	return prefixRegion{lo, r.bits + 1}, prefixRegion{hi, r.bits + 1}
}

// nodesInPrefix finds every node whose ID shares bits leading bits with
// target. A lookup of a point in a region returns the K closest nodes to
// it; nodes inside the region are closer than any outside, so when fewer
// than K of the answer lie inside, those are all the region holds;
// otherwise the region is split in two and each half looked up. first is
// the answer of a lookup of target itself. The cost is about 2n/K lookups
// for a prefix of n nodes, capped at maxSweepLookups.
func (d *DHT) nodesInPrefix(ctx context.Context, target block.ID, bits int, first []transport.Contact) ([]transport.Contact, error) {
	found := make(map[block.ID]transport.Contact)
	queue := []prefixRegion{{target, bits}}
	lookups := 0
	var incomplete error
	for len(queue) > 0 && ctx.Err() == nil {
		r := queue[0]
		queue = queue[1:]
		res := first
		if first != nil {
			first = nil
		} else {
			if lookups == maxSweepLookups {
				incomplete = fmt.Errorf("%w: the %d-bit prefix of %v holds more nodes than %d lookups find", ErrListIncomplete, bits, target.Short(), maxSweepLookups)
				break
			}
			lookups++
			var err error
			res, _, err = d.Lookup(ctx, d.randomIDInRegion(r))
			if err != nil {
				d.log.Debug("kademlia: prefix sweep lookup failed", "err", err)
				continue
			}
		}
		inside := 0
		for _, c := range res {
			if block.CommonPrefixLen(c.ID, r.prefix) >= r.bits {
				found[c.ID] = c
				inside++
			}
		}
		if inside == len(res) && len(res) == d.cfg.K && r.bits < 8*block.IDSize {
			a, b := r.split()
			queue = append(queue, a, b)
		}
	}
	out := make([]transport.Contact, 0, len(found))
	for _, c := range found {
		out = append(out, c)
	}
	sortByDistance(out, target)
	if ctx.Err() != nil {
		return out, ctx.Err()
	}
	return out, incomplete
}

// randomIDInRegion returns an ID with r's prefix and random bits after.
func (d *DHT) randomIDInRegion(r prefixRegion) block.ID {
	id := d.randomID()
	for i := range block.IDSize {
		switch {
		case (i+1)*8 <= r.bits:
			id[i] = r.prefix[i]
		case i*8 < r.bits:
			keep := byte(0xff) << (8 - (r.bits - i*8))
			id[i] = r.prefix[i]&keep | id[i]&^keep
		}
	}
	return id
}

// fanOutLimited is fanOut with at most limit calls running at once (and
// at most limit goroutines: a saved table can hold thousands of contacts).
func fanOutLimited(ctx context.Context, cs []transport.Contact, limit int, fn func(context.Context, transport.Contact) error) (int, []error) {
	errs := make([]error, len(cs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(limit, len(cs)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(cs); i = int(next.Add(1) - 1) {
				if errs[i] = ctx.Err(); errs[i] == nil {
					errs[i] = fn(ctx, cs[i])
				}
			}
		})
	}
	wg.Wait()
	return countErrors(errs)
}
