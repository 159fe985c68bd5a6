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
// of a crowded prefix, or found more than MaxListResults entries; the
// entries it returns are still valid.
var ErrListIncomplete = errors.New("kademlia: listing incomplete")

// Bounds of one List: pages per node (each up to MaxListEntries), and the
// lookups a prefix sweep may spend (each finds up to K nodes of it).
const (
	MaxListPages    = 64
	maxSweepLookups = 64
	listParallelism = K
	maxPrefixBits   = 255 // LIST carries bits in a u8
)

// MaxListResults bounds the entries one List keeps (docs/PROTOCOL.md
// section 11): twice what one node may list before it is a bad source
// (MaxListPages pages of MaxListEntries), so no single node, however it
// lies, can fill it.
const MaxListResults = 2 * MaxListPages * MaxListEntries

// List collects the index blocks whose IDs share at least bits leading
// bits with target and that were stored at or after since, from the K
// nodes closest to target (and the own store). When all K of those share
// at least bits with target the prefix holds more nodes, and List sweeps
// it: it finds every node of the prefix (docs/PROTOCOL.md section 8) and
// lists each. Entries come in ascending ID order, each with the earliest
// stored_at any node reported.
//
// A node whose listing breaks the rules (out of order, outside the
// prefix, before since, or still more after MaxListPages pages) is a bad
// source: its entries are dropped and it is charged a failure. Beyond
// MaxListResults entries List keeps those of the own store, then those
// the most nodes listed, and wraps ErrListIncomplete.
func (d *DHT) List(ctx context.Context, target block.ID, bits int, since time.Time) ([]blockstore.ListEntry, error) {
	if bits < 0 || bits > maxPrefixBits {
		return nil, fmt.Errorf("kademlia: list prefix of %d bits, want 0 to %d", bits, maxPrefixBits)
	}
	if since.Unix() < 0 {
		since = time.Unix(0, 0)
	}
	since = time.Unix(since.Unix(), 0)
	col := &listCollector{target: target, bits: bits, since: since, entries: make(map[block.ID]*listRecord)}
	var errs []error
	sources := 0
	if d.cfg.Store != nil {
		if err := col.fromStore(ctx, d.cfg.Store); err != nil {
			errs = append(errs, fmt.Errorf("local store: %w", err))
		} else {
			sources++
		}
	}
	// A table that knows every node near target names the K closest
	// without a lookup, as a store lookup does (docs/PROTOCOL.md 8, 9.7).
	nodes := d.table.knowsAllNear(target, d.cfg.K)
	var lerr error
	if len(nodes) == 0 {
		if nodes, _, lerr = d.Lookup(ctx, target); lerr != nil {
			errs = append(errs, lerr)
		}
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
	out, dropped := col.sorted()
	if dropped > 0 {
		d.log.Warn("kademlia: listing holds too many entries", "target", target.Short(), "kept", len(out), "dropped", dropped)
		errs = append(errs, fmt.Errorf("%w: %d entries beyond the %d kept", ErrListIncomplete, dropped, MaxListResults))
	}
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
// entry is one the request asked for. It holds at most 2·MaxListResults
// entries: beyond, it keeps the MaxListResults that rank first (see
// rankListed) and counts the rest as dropped.
type listCollector struct {
	target block.ID
	bits   int
	since  time.Time

	mu      sync.Mutex
	entries map[block.ID]*listRecord
	dropped int
}

// listRecord is what the listings said of one ID.
type listRecord struct {
	storedAt time.Time // the earliest reported
	sources  int       // nodes that listed it, the own store included
	local    bool      // the own store holds it
}

// listedEntry is one entry of one node's listing.
type listedEntry struct {
	id       block.ID
	storedAt time.Time
}

// addAll merges the listing of one source (each ID once).
func (col *listCollector) addAll(es []listedEntry, local bool) {
	col.mu.Lock()
	defer col.mu.Unlock()
	for _, e := range es {
		r := col.entries[e.id]
		if r == nil {
			r = &listRecord{storedAt: e.storedAt}
			col.entries[e.id] = r
		}
		r.sources++
		r.local = r.local || local
		if e.storedAt.Before(r.storedAt) {
			r.storedAt = e.storedAt
		}
	}
	if len(col.entries) > 2*MaxListResults {
		col.trim()
	}
}

// trim keeps the MaxListResults entries that rank first. An entry
// dropped here and listed again later starts a new count: past the
// bound, counts are a best effort.
func (col *listCollector) trim() {
	if len(col.entries) <= MaxListResults {
		return
	}
	ranked := make([]block.ID, 0, len(col.entries))
	for id := range col.entries {
		ranked = append(ranked, id)
	}
	slices.SortFunc(ranked, func(a, b block.ID) int { return rankListed(a, col.entries[a], b, col.entries[b]) })
	for _, id := range ranked[MaxListResults:] {
		delete(col.entries, id)
	}
	col.dropped += len(ranked) - MaxListResults
}

// rankListed orders the entries a full listing keeps: those of the own
// store first, then those more nodes listed (a liar's inventions are
// listed by the liar alone, a real index block by each of its holders),
// then by ID.
func rankListed(a block.ID, ra *listRecord, b block.ID, rb *listRecord) int {
	switch {
	case ra.local != rb.local:
		if ra.local {
			return -1
		}
		return 1
	case ra.sources != rb.sources:
		return rb.sources - ra.sources
	}
	return CompareDistance(a, b, block.ID{})
}

// sorted returns the kept entries in ascending ID order and how many were
// dropped for MaxListResults.
func (col *listCollector) sorted() ([]blockstore.ListEntry, int) {
	col.mu.Lock()
	defer col.mu.Unlock()
	col.trim()
	out := make([]blockstore.ListEntry, 0, len(col.entries))
	for id, r := range col.entries {
		out = append(out, blockstore.ListEntry{ID: id, StoredAt: r.storedAt})
	}
	slices.SortFunc(out, func(a, b blockstore.ListEntry) int { return CompareDistance(a.ID, b.ID, block.ID{}) })
	return out, col.dropped
}

func (col *listCollector) fromStore(ctx context.Context, s blockstore.Store) error {
	var after *block.ID
	var got []listedEntry
	for range MaxListPages {
		entries, more, err := s.List(ctx, col.target, col.bits, col.since, after, MaxListEntries)
		if err != nil {
			col.addAll(got, true)
			return err
		}
		for _, e := range entries {
			got = append(got, listedEntry{e.ID, e.StoredAt})
		}
		if !more || len(entries) == 0 {
			break
		}
		last := entries[len(entries)-1].ID
		after = &last
	}
	col.addAll(got, true)
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
// or more than MaxListPages pages, is a bad source: none of its entries
// are kept and it is charged a failure. One lying node must neither
// flood the result nor, by always saying "more", make the whole List
// incomplete.
func (d *DHT) listAt(ctx context.Context, c transport.Contact, col *listCollector) error {
	got, err := d.listPages(ctx, c, col)
	if errors.Is(err, errBadSource) {
		// It answered, so it is c.ID: charged wherever the table has it.
		d.table.failed(transport.Contact{ID: c.ID})
		return fmt.Errorf("%w: %w", ErrBadReply, err)
	}
	if err != nil {
		return err
	}
	col.addAll(got, false)
	return nil
}

// errBadSource marks the listings listAt drops.
var errBadSource = errors.New("bad source, its entries are dropped")

// listPages returns the entries of c's listing.
func (d *DHT) listPages(ctx context.Context, c transport.Contact, col *listCollector) ([]listedEntry, error) {
	req := List{Target: col.target, Bits: uint8(col.bits), Since: uint64(col.since.Unix()), Limit: MaxListEntries}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("LISTED from %v %s: %w", c.ID.Short(), fmt.Sprintf(format, args...), errBadSource)
	}
	var got []listedEntry
	for range MaxListPages {
		m, _, err := d.request(ctx, c, req)
		if err != nil {
			return nil, err
		}
		resp, ok := m.(Listed)
		if !ok {
			return nil, bad("is a %v", m.Type())
		}
		for _, e := range resp.Entries {
			storedAt := unixTime(e.StoredAt)
			switch {
			case req.HasAfter && !block.Less(req.After, e.ID):
				return nil, bad("is not in ascending order after the cursor")
			case block.CommonPrefixLen(e.ID, col.target) < col.bits:
				return nil, bad("holds %v outside the prefix", e.ID.Short())
			case storedAt.Before(col.since):
				return nil, bad("holds an entry stored before since")
			}
			got = append(got, listedEntry{e.ID, storedAt})
			req.HasAfter, req.After = true, e.ID
		}
		if !resp.More {
			return got, nil
		}
		if len(resp.Entries) == 0 {
			return nil, bad("says more but lists nothing")
		}
	}
	return nil, bad("still says more after %d pages", MaxListPages)
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
