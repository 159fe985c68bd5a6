package kademlia

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/blockstore"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/clock"
	"github.com/flowmail/flowmail/record"
	"github.com/flowmail/flowmail/transport"
)

// lifetimeSeconds converts a lifetime for the wire: whole seconds, 1 to
// MaxLifetimeSeconds.
func lifetimeSeconds(lifetime time.Duration) (uint32, error) {
	s := lifetime / time.Second
	if s < 1 || s > time.Duration(MaxLifetimeSeconds) {
		return 0, fmt.Errorf("%w: %v, want 1 s to %v", ErrLifetime, lifetime, block.MaxLifetime)
	}
	return uint32(s), nil
}

// selfAmong reports whether this node is one of the n closest to id,
// given the closest others a lookup found.
func (d *DHT) selfAmong(id block.ID, closest []transport.Contact, n int) bool {
	if d.cfg.Store == nil {
		return false
	}
	closest = closest[:min(n, len(closest))]
	return len(closest) < n || CompareDistance(d.cfg.ID, closest[len(closest)-1].ID, id) < 0
}

// holders is how many of the nodes closest to a block of type t store
// it: R (block.ShardReplicas) for data blocks, whose redundancy is mostly
// the erasure code's (docs/PROTOCOL.md 9.7), K for pubkey, index and
// record blocks. Put and republishing both ask it, so a block keeps the
// same count of copies as holders come and go.
func (d *DHT) holders(t block.Type) int {
	if t == block.TypeData {
		return min(block.ShardReplicas, d.cfg.K)
	}
	return d.cfg.K
}

// seekWidth is how many of the closest nodes a put of a block of type t
// looks up at most (docs/PROTOCOL.md 8, 9.7): K, or 2R for a data block,
// and how many IP groups among them end a data block's lookup early
// (seekGroups). 2R contacts, at most two of one IP group, always offer
// the R groups that placement takes one holder from; the lookup ends as
// soon as the closest that answered span R groups, which on most
// networks are the R closest: R requests instead of twenty.
func (d *DHT) seekWidth(t block.Type) int {
	if t == block.TypeData {
		return min(2*block.ShardReplicas, d.cfg.K)
	}
	return d.cfg.K
}

// seekGroups is lookupParams.groups for a put of a block of type t: R
// for a data block, none for the others.
func (d *DHT) seekGroups(t block.Type) int {
	if t == block.TypeData {
		return d.holders(t)
	}
	return 0
}

// placement picks the n contacts of closest (closest to id first) that
// are to hold a block of type t. A data block, held by few, takes at most one
// contact per IP group (unless the IP limits are off, as on a testnet):
// Sybils ground next to its ID from one or two IP groups can be at most
// as many of its R holders, and an honest holder remains (docs/PROTOCOL.md
// 9.7). Where closest has too few groups, the closest others fill in.
func (d *DHT) placement(id block.ID, closest []transport.Contact, n int, t block.Type) []transport.Contact {
	if t != block.TypeData || d.cfg.BucketIPLimit < 0 {
		return closest[:min(n, len(closest))]
	}
	picked := make([]transport.Contact, 0, n)
	var rest []transport.Contact
	groups := make(map[netip.Prefix]bool, n)
	for _, c := range closest {
		if len(picked) == n {
			break
		}
		g := ipGroup(c.Addr.Addr())
		if g.IsValid() && groups[g] {
			rest = append(rest, c)
			continue
		}
		groups[g] = true
		picked = append(picked, c)
	}
	if len(picked) < n {
		picked = append(picked, rest[:min(n-len(picked), len(rest))]...)
		slices.SortFunc(picked, func(a, b transport.Contact) int { return CompareDistance(a.ID, b.ID, id) })
	}
	return picked
}

// Put stores blk at the nodes closest to its ID (K of them, R for a data
// block: holders) for lifetime (whole seconds, at most
// block.MaxLifetime), this node included when it is a full node among
// them. It returns how many nodes acknowledged the block.
// A record goes to its slot: Put hands it to PutRecord.
func (d *DHT) Put(ctx context.Context, blk []byte, lifetime time.Duration) (int, error) {
	return d.put(ctx, nil, blk, lifetime)
}

// PutKnown is Put for a block whose ID the caller computed already (a
// mail's blocks, hashed side by side as they were built), which it does
// not hash again. A wrong id only sends the block where it does not
// belong: holders hash what they take.
func (d *DHT) PutKnown(ctx context.Context, id block.ID, blk []byte, lifetime time.Duration) (int, error) {
	return d.put(ctx, &id, blk, lifetime)
}

func (d *DHT) put(ctx context.Context, known *block.ID, blk []byte, lifetime time.Duration) (int, error) {
	if h, _, err := block.ParseHeader(blk); err == nil && h.Type == block.TypeRecord {
		return d.PutRecord(ctx, blk, lifetime)
	}
	secs, err := lifetimeSeconds(lifetime)
	if err != nil {
		return 0, err
	}
	h, err := identity.Check(blk)
	if err != nil {
		return 0, fmt.Errorf("kademlia: refusing to put an invalid block: %w", err)
	}
	var id block.ID
	if known != nil {
		id = *known
	} else {
		id = block.Sum(blk)
	}
	if d.storesDirect(id, h.Type) {
		return d.storeLookup(ctx, id, blk, secs, h.Type)
	}
	closest, _, lerr := d.lookupWidth(ctx, id, d.seekWidth(h.Type), d.seekGroups(h.Type))
	if lerr != nil && (d.cfg.Store == nil || ctx.Err() != nil) {
		return 0, lerr
	}
	n := d.holders(h.Type)
	return d.storeAt(ctx, id, blk, secs, d.placement(id, closest, n, h.Type), n)
}

// storesDirect reports whether a put of the block id of type t may
// skip its FIND_NODE lookup and be a store lookup (docs/PROTOCOL.md 9.7):
// the routing table knows every node it heard of near id, this node is
// not among the closest (holders(t) of them), and, for a data block, they
// span as many IP groups (or IP limits are off). In a network of a few
// dozen nodes that is every put of a client; in a large one the bucket of
// a random ID is full and the lookup stays.
func (d *DHT) storesDirect(id block.ID, t block.Type) bool { return len(d.directHolders(id, t)) > 0 }

// directHolders is the holders(t) closest contacts to id when storesDirect
// holds, else nil. Fewer than holders(t): the network has no more nodes
// (the table knows all).
func (d *DHT) directHolders(id block.ID, t block.Type) []transport.Contact {
	n := d.holders(t)
	cs := d.table.knowsAllNear(id, n)
	if len(cs) == 0 || d.selfAmong(id, cs, n) || t == block.TypeData && d.cfg.BucketIPLimit >= 0 && !distinctGroups(cs) {
		return nil
	}
	return cs
}

// PutDataMany puts data blocks whose IDs the caller computed (a mail's
// shards, docs/PROTOCOL.md 9.7). A block whose R closest the routing
// table knows (storesDirect) goes to those R in STORE_MANY requests, one
// per holder and frame, at most workers requests at once; every other
// block, and every block that fewer of them took or one of them knows a
// node closer to than this node knew (the j-th closest names more than
// j-1 closer), is put as PutKnown puts it, workers at a time. done, when not nil, is
// called once for each block that ends stored, with its index, from any
// goroutine. It returns the copies stored of each block and an error
// naming those no node took.
func (d *DHT) PutDataMany(ctx context.Context, ids []block.ID, blocks [][]byte, lifetime time.Duration, workers int, done func(i int)) ([]int, error) {
	if len(ids) != len(blocks) {
		return nil, fmt.Errorf("kademlia: PutDataMany of %d blocks with %d IDs", len(blocks), len(ids))
	}
	secs, err := lifetimeSeconds(lifetime)
	if err != nil {
		return nil, err
	}
	workers = max(workers, 1)
	type batch struct {
		to   transport.Contact
		idx  []int
		rank []int // of the holder among the block's, from 0
		size int
	}
	var (
		reqs    []*batch
		open    = make(map[block.ID]*batch)
		copies  = make([]int, len(ids)) // STORE_MANY: held where it belongs
		want    = make([]int, len(ids)) // holders asked; 0: put it alone
		pending = make([]int, len(ids)) // STORE_MANY answers to come
	)
	for i, id := range ids {
		if h, _, err := block.ParseHeader(blocks[i]); err != nil || h.Type != block.TypeData {
			continue
		}
		cs := d.directHolders(id, block.TypeData)
		want[i], pending[i] = len(cs), len(cs)
		for rank, c := range cs {
			b := open[c.ID]
			if grow := 4 + len(blocks[i]); b == nil || len(b.idx) == MaxStoreMany || b.size+grow > transport.MaxFrameSize {
				b = &batch{to: c, size: 1 + 4 + 2}
				open[c.ID] = b
				reqs = append(reqs, b)
			}
			b.idx, b.rank = append(b.idx, i), append(b.rank, rank)
			b.size += 4 + len(blocks[i])
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, workers)
send:
	for _, b := range reqs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break send
		}
		wg.Go(func() {
			defer func() { <-sem }()
			m := StoreMany{Lifetime: secs, Blocks: make([][]byte, len(b.idx))}
			for j, i := range b.idx {
				m.Blocks[j] = blocks[i]
			}
			ans, err := expect[StoredMany](d.request(ctx, b.to, m))
			if err == nil && len(ans.Closer) != len(m.Blocks) {
				err = fmt.Errorf("%w: STORED_MANY with %d entries for %d blocks", ErrBadReply, len(ans.Closer), len(m.Blocks))
			}
			if err != nil {
				d.log.Debug("kademlia: STORE_MANY failed", "to", b.to.ID.Short(), "blocks", len(m.Blocks), "err", err)
			}
			var finished []int
			mu.Lock()
			for j, i := range b.idx {
				// Held, and nobody closer than the holders before it.
				if err == nil && int(ans.Closer[j]) <= b.rank[j] {
					copies[i]++
				}
				if pending[i]--; pending[i] == 0 && copies[i] == want[i] {
					finished = append(finished, i)
				}
			}
			mu.Unlock()
			if done != nil {
				for _, i := range finished {
					done(i)
				}
			}
		})
	}
	wg.Wait()
	// The rest one by one, as PutKnown puts them.
	errs := make([]error, len(ids))
	for i := range ids {
		if want[i] > 0 && copies[i] == want[i] {
			continue
		}
		if ctx.Err() != nil {
			errs[i] = ctx.Err()
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			n, err := d.put(ctx, &ids[i], blocks[i], lifetime)
			mu.Lock()
			// The put reaches the holders STORE_MANY reached again.
			copies[i] = max(copies[i], n)
			failed := copies[i] == 0
			mu.Unlock()
			switch {
			case failed:
				errs[i] = err
			case done != nil:
				done(i)
			}
		})
	}
	wg.Wait()
	return copies, errors.Join(errs...)
}

// distinctGroups reports whether no two contacts share an IP group.
func distinctGroups(cs []transport.Contact) bool {
	seen := make(map[netip.Prefix]bool, len(cs))
	for _, c := range cs {
		g := ipGroup(c.Addr.Addr())
		if seen[g] {
			return false
		}
		seen[g] = true
	}
	return true
}

// storeLookup puts a block of type t with a lookup whose requests are
// the STOREs (docs/PROTOCOL.md 9.7): to its holders(t) closest the table
// knows at once, and on to any closer node a STORED answer names, until
// the closest that stored it are found (for a data block: span R IP
// groups). A data block stored to a node that turns out not to be among
// them is handed off at that node's republish date.
func (d *DHT) storeLookup(ctx context.Context, id block.ID, blk []byte, secs uint32, t block.Type) (int, error) {
	st := Store{Lifetime: secs, Block: blk}
	m, err := d.runLookup(ctx, id, lookupOp{store: &st, alpha: d.holders(t)}, d.seekWidth(t), d.seekGroups(t))
	if m.oks == 0 {
		if err == nil {
			err = errors.New("no node took it")
		}
		return 0, fmt.Errorf("%w: %v: %w", ErrNotStored, id.Short(), err)
	}
	return m.oks, nil
}

// storeAt stores blk at the n closest contacts and, when this full node
// is among the n closest, locally; the remote set is trimmed so n nodes
// in all hold the block.
func (d *DHT) storeAt(ctx context.Context, id block.ID, blk []byte, secs uint32, closest []transport.Contact, n int) (int, error) {
	stored := 0
	var errs []error
	closest = closest[:min(n, len(closest))]
	if d.selfAmong(id, closest, n) {
		if _, err := d.cfg.Store.Put(ctx, blk, time.Duration(secs)*time.Second, blockstore.PutOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("local store: %w", err))
		} else {
			stored++
			d.repub.schedule(id, d.now().Add(d.jitter(d.cfg.RepublishInterval)))
			if len(closest) == n {
				closest = closest[:n-1]
			}
		}
	}
	ok, failed := d.requestAll(ctx, closest, Store{Lifetime: secs, Block: blk})
	stored += ok
	errs = append(errs, failed...)
	if stored == 0 {
		return 0, fmt.Errorf("%w: %v: %w", ErrNotStored, id.Short(), errors.Join(errs...))
	}
	return stored, nil
}

// requestAll sends m (STORE or DELETE) to every contact at once and
// counts the STORED or OK replies. m is encoded once: a STORE carries the
// block.
func (d *DHT) requestAll(ctx context.Context, cs []transport.Contact, m Message) (int, []error) {
	req, err := Encode(m)
	if err != nil {
		return 0, []error{err}
	}
	return fanOut(ctx, cs, func(ctx context.Context, c transport.Contact) error {
		if _, ok := m.(Store); ok {
			_, err := expect[Stored](d.requestEncoded(ctx, c, m, req))
			return err
		}
		_, err := expect[OK](d.requestEncoded(ctx, c, m, req))
		return err
	})
}

// Get finds the block id: from the own store when held, else by a
// FIND_BLOCK lookup that ends at the first block that hashes to id (a
// peer that returns other bytes is dropped and the lookup goes on). It
// returns the block and its remaining lifetime. Given a record's slot it
// returns the first valid version found; GetRecord asks the K closest
// for the newest.
func (d *DHT) Get(ctx context.Context, id block.ID) ([]byte, time.Duration, error) {
	if d.cfg.Store != nil {
		data, meta, err := d.cfg.Store.Get(ctx, id)
		if err == nil {
			if s := remainingSeconds(meta, d.now()); s > 0 {
				return data, time.Duration(s) * time.Second, nil
			}
		} else if !errors.Is(err, blockstore.ErrNotFound) {
			d.log.Warn("kademlia: reading a block", "id", id.Short(), "err", err)
		}
	}
	m, err := d.runLookup(ctx, id, lookupOp{wantBlock: true}, d.cfg.K, 0)
	if err != nil {
		return nil, 0, err
	}
	if m.found == nil {
		return nil, 0, fmt.Errorf("%w: %v (%d requests)", ErrNotFound, id.Short(), m.stats.Messages)
	}
	if h, _, err := block.ParseHeader(m.found); err == nil && h.Type != block.TypeRecord {
		wide := h.Type != block.TypeData
		d.near.remember(id, m.nearest(d.seekWidth(h.Type)), wide, d.now())
	}
	return m.found, time.Duration(m.lifetime) * time.Second, nil
}

// Delete asks the nodes that hold id to drop it, proving the right with
// preimage, and drops it from the own store. It does not know the
// block's type: a delete lookup (its requests are the DELETEs) asks the
// 2R closest (a data block's holders are R of them) and, when more than
// R of those held it (a block held by K), the rest of the K closest are
// looked up and asked (docs/PROTOCOL.md 8). A block Get fetched lately
// is deleted by a delete lookup seeded with the contacts that Get's
// lookup knew (nearMemo): a data block as DeleteData deletes it, a block
// held by K with its K closest asked at once. It returns how many nodes
// deleted it.
func (d *DHT) Delete(ctx context.Context, id block.ID, preimage [32]byte) (int, error) {
	return d.deleteBlock(ctx, id, preimage, false)
}

// DeleteData is Delete for a block the caller knows is a data block (a
// mail's shard), held by R: a delete lookup narrowed to R IP groups
// asks the R closest, and the rest of the 2R closest it heard of are
// asked only when fewer than R held it. For a data block Get fetched
// lately, that lookup starts at the closest contacts Get's lookup knew
// (nearMemo), where its R holders almost always are.
func (d *DHT) DeleteData(ctx context.Context, id block.ID, preimage [32]byte) (int, error) {
	return d.deleteBlock(ctx, id, preimage, true)
}

// DeleteTarget is one block for DeleteMany: its ID, the preimage of its
// deletion hash, and whether it is held by K (an index block) rather
// than by R (a data block).
type DeleteTarget struct {
	ID       block.ID
	Preimage [32]byte
	HeldByK  bool
}

// DeleteMany deletes several blocks (a fetched mail's index block and
// shards). Each block whose holders this node can name, the closest
// contacts a Get of it lately knew (R for a data block, K for a block
// held by K) or, when the routing table knows every node near it
// (knowsAllNear), as many of those, is asked in one DELETE_MANY per
// holder, all at once; the others, and those that fewer holders
// deleted than were asked, are deleted as Delete or DeleteData does
// (docs/PROTOCOL.md 8). It returns the copies deleted of each block, and
// an error naming those no node deleted.
func (d *DHT) DeleteMany(ctx context.Context, ts []DeleteTarget) ([]int, error) {
	deleted := make([]int, len(ts))
	if d.cfg.Store != nil {
		ids, pres := make([]block.ID, len(ts)), make([][32]byte, len(ts))
		for i, t := range ts {
			ids[i], pres[i] = t.ID, t.Preimage
		}
		for i, err := range d.cfg.Store.DeleteMany(ctx, ids, pres) {
			if err == nil {
				deleted[i]++
				d.repub.forget(ids[i])
			}
		}
	}
	// The blocks each holder is asked to drop, by position in ts.
	type batch struct {
		to  transport.Contact
		idx []int
	}
	var batches []*batch
	byHolder := make(map[block.ID]*batch)
	asked := make([]int, len(ts))
	for i, t := range ts {
		n := d.holders(block.TypeData)
		if t.HeldByK {
			n = d.cfg.K
		}
		var cs []transport.Contact
		// Peeked, not taken: a block that falls short goes on to a
		// delete lookup seeded with the same holders.
		if near, wide := d.near.peek(t.ID, d.now()); len(near) > 0 && wide == t.HeldByK {
			cs = near[:min(n, len(near))]
		} else if all := d.table.knowsAllNear(t.ID, n); len(all) > 0 && !d.selfAmong(t.ID, all, n) {
			cs = all
		}
		for _, c := range cs {
			b := byHolder[c.ID]
			if b == nil {
				b = &batch{to: c}
				byHolder[c.ID] = b
				batches = append(batches, b)
			}
			b.idx = append(b.idx, i)
		}
		asked[i] = len(cs)
	}
	// One request per holder and MaxDeleteMany IDs, all at once.
	var reqs []batch
	for _, b := range batches {
		slices.SortFunc(b.idx, func(x, y int) int { return bytes.Compare(ts[x].ID[:], ts[y].ID[:]) })
		b.idx = slices.CompactFunc(b.idx, func(x, y int) bool { return ts[x].ID == ts[y].ID })
		for chunk := range slices.Chunk(b.idx, MaxDeleteMany) {
			reqs = append(reqs, batch{to: b.to, idx: chunk})
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, rq := range reqs {
		wg.Go(func() {
			m := DeleteMany{Deletes: make([]Delete, len(rq.idx))}
			for j, i := range rq.idx {
				m.Deletes[j] = Delete{ID: ts[i].ID, Preimage: ts[i].Preimage}
			}
			// A holder that is gone costs a stall time, as in a delete
			// lookup, not the request timeout: its blocks go on below.
			rctx := ctx
			if st := d.stallTimeout(); st > 0 {
				var cancel context.CancelFunc
				rctx, cancel = context.WithTimeout(ctx, st)
				defer cancel()
			}
			ans, err := expect[Deleted](d.request(rctx, rq.to, m))
			if err == nil && len(ans.Statuses) != len(m.Deletes) {
				err = fmt.Errorf("%w: DELETED with %d statuses for %d IDs", ErrBadReply, len(ans.Statuses), len(m.Deletes))
			}
			if err != nil {
				d.log.Debug("kademlia: DELETE_MANY failed", "to", rq.to.ID.Short(), "ids", len(m.Deletes), "err", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for j, st := range ans.Statuses {
				if st == StatusDeleted {
					deleted[rq.idx[j]]++
				}
			}
		})
	}
	wg.Wait()
	// The rest one by one, as Delete and DeleteData do, eight at a time,
	// with what a Get remembered of their holders: a block held by K is
	// asked at all K it knew and looked up when fewer deleted it.
	errs := make([]error, len(ts))
	sem := make(chan struct{}, 8)
	for i, t := range ts {
		if asked[i] > 0 && deleted[i] >= asked[i] {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			n, err := d.deleteBlock(ctx, t.ID, t.Preimage, !t.HeldByK)
			mu.Lock()
			defer mu.Unlock()
			deleted[i] += n
			if deleted[i] == 0 {
				errs[i] = err
			}
		})
	}
	wg.Wait()
	return deleted, errors.Join(errs...)
}

func (d *DHT) deleteBlock(ctx context.Context, id block.ID, preimage [32]byte, data bool) (int, error) {
	deleted := 0
	var errs []error
	if d.cfg.Store != nil {
		switch err := d.cfg.Store.Delete(ctx, id, preimage); {
		case err == nil:
			deleted++
			d.repub.forget(id)
		case !errors.Is(err, blockstore.ErrNotFound):
			errs = append(errs, fmt.Errorf("local store: %w", err))
		}
	}
	msg := Delete{ID: id, Preimage: preimage}
	r, narrow := d.holders(block.TypeData), d.seekWidth(block.TypeData)
	asked := make(map[block.ID]bool, d.cfg.K)
	deleteAt := func(cs []transport.Contact) {
		cs = slices.DeleteFunc(slices.Clone(cs), func(c transport.Contact) bool { return asked[c.ID] })
		for _, c := range cs {
			asked[c.ID] = true
		}
		ok, failed := d.requestAll(ctx, cs, msg)
		deleted += ok
		errs = append(errs, failed...)
	}
	// A delete is a lookup whose requests are the DELETEs: holders
	// answer OK, the others NODES. op.seeds and op.alpha are set for a
	// block this node just got (below).
	deleteLookup := func(op lookupOp, width, groups int) *lookupMachine {
		op.del = &msg
		m, err := d.runLookup(ctx, id, op, width, groups)
		if err != nil {
			errs = append(errs, err)
		}
		deleted += m.oks
		for _, c := range m.cands {
			if c.state != fresh {
				asked[c.ID] = true
			}
		}
		return m
	}
	// Holders answer OK without contacts, so a delete lookup does not
	// find holders of a block held by K that it was not told of: they
	// are among the K closest a FIND_NODE lookup finds.
	widen := func() {
		wide, _, err := d.Lookup(ctx, id)
		if err != nil {
			errs = append(errs, err)
		}
		deleteAt(wide)
	}
	// A block this node just got: its holders are almost always the
	// closest that Get's lookup knew, so they seed the delete lookup
	// beside the routing table. Being a lookup, it passes over a
	// contact that was named but is gone instead of waiting for its
	// dial. A block held by K is asked at all K closest at once, and
	// looked up (FIND_NODE) only when fewer than K held it.
	near, heldByK := d.near.take(id, d.now())
	switch {
	case len(near) > 0 && heldByK:
		if deleteLookup(lookupOp{seeds: near, alpha: d.cfg.K}, d.cfg.K, 0); deleted < d.cfg.K {
			widen()
		}
		return d.deleted(id, deleted, errs)
	case len(near) > 0 || data:
		if m := deleteLookup(lookupOp{seeds: near}, narrow, r); deleted < r {
			deleteAt(m.nearest(narrow))
		}
		return d.deleted(id, deleted, errs)
	}
	deleteLookup(lookupOp{}, narrow, 0)
	if deleted > r && narrow < d.cfg.K {
		widen()
	}
	return d.deleted(id, deleted, errs)
}

// deleted is deleteBlock's result: an error when no node deleted id.
func (d *DHT) deleted(id block.ID, deleted int, errs []error) (int, error) {
	if deleted == 0 {
		return 0, fmt.Errorf("kademlia: no node deleted %v: %w", id.Short(), errors.Join(errs...))
	}
	return deleted, nil
}

// republishSchedule remembers when each held block is next due for
// republishing. A STORE from another holder pushes the date back, so
// usually one holder per interval republishes a block.
//
// Dates are given for Config.RepublishInterval, whatever the block's
// type (the STORE handler need not parse what it stores); a data block's
// wait, from the moment its date was set, is stretched by
// ShardRepublishInterval / RepublishInterval when it is read (dueAmong),
// which keeps the ±10% jitter proportional.
type republishSchedule struct {
	mu      sync.Mutex
	due     map[block.ID]time.Time
	set     map[block.ID]time.Time // when due[id] was given
	clock   clock.Clock
	stretch float64 // Config.ShardRepublishInterval / Config.RepublishInterval
}

func (r *republishSchedule) schedule(id block.ID, at time.Time) {
	now := r.clock.Now()
	r.mu.Lock()
	r.due[id], r.set[id] = at, now
	r.mu.Unlock()
}

// dateOf is when a block of type t given date at (set at set) is due.
func (r *republishSchedule) dateOf(t block.Type, set, at time.Time) time.Time {
	if t != block.TypeData {
		return at
	}
	return set.Add(time.Duration(float64(at.Sub(set)) * r.stretch))
}

// dueAmong returns the held blocks whose date has passed at now, gives
// blocks met for the first time the date now + spread() (stretched for
// data blocks, so a restart spreads them over their own interval), and
// forgets past dates of blocks no longer held.
func (r *republishSchedule) dueAmong(held []blockstore.Meta, now time.Time, spread func() time.Duration) []blockstore.Meta {
	r.mu.Lock()
	defer r.mu.Unlock()
	var due []blockstore.Meta
	ids := make(map[block.ID]struct{}, len(held))
	for _, m := range held {
		ids[m.ID] = struct{}{}
		at, ok := r.due[m.ID]
		if !ok {
			at = now.Add(spread())
			r.due[m.ID], r.set[m.ID] = at, now
		}
		if !now.Before(r.dateOf(m.Type, r.set[m.ID], at)) {
			due = append(due, m)
		}
	}
	// A date still ahead may belong to a block stored after the listing.
	// (A forgotten data block's stretched date may lie ahead: it is met
	// again, if still held, with a fresh spread.)
	for id, at := range r.due {
		if _, ok := ids[id]; !ok && !at.After(now) {
			delete(r.due, id)
			delete(r.set, id)
		}
	}
	return due
}

func (r *republishSchedule) forget(id block.ID) {
	r.mu.Lock()
	delete(r.due, id)
	delete(r.set, id)
	r.mu.Unlock()
}

// Republish re-stores every held block whose republish date has passed at
// the nodes closest to it (holders: K, or R for a data block, whose date
// comes every ShardRepublishInterval; a record: to its slot), with its
// remaining lifetime, and returns how many it republished. A data block
// this node finds it is no longer among the R closest to is handed to
// them and dropped here. A node that refuses a record as stale holds a
// newer version, which this node then fetches and keeps. A block first
// met here (after a restart) gets a
// date spread over the next interval, so a restart does not send
// everything at once. The node calls Republish often (every minute or
// so); each call does only what is due.
func (d *DHT) Republish(ctx context.Context) (int, error) {
	if d.cfg.Store == nil {
		return 0, nil
	}
	var held []blockstore.Meta
	if err := d.cfg.Store.Range(ctx, func(m blockstore.Meta) error {
		held = append(held, m)
		return nil
	}); err != nil {
		return 0, fmt.Errorf("kademlia: listing held blocks: %w", err)
	}
	due := d.repub.dueAmong(held, d.now(), func() time.Duration {
		d.rngMu.Lock()
		defer d.rngMu.Unlock()
		return time.Duration(d.rng.Int64N(int64(d.cfg.RepublishInterval)))
	})
	// A few blocks at a time: each is a lookup plus K stores.
	const parallel = 4
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for _, m := range due {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if d.republishOne(ctx, m) {
				mu.Lock()
				done++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return done, ctx.Err()
}

func (d *DHT) republishOne(ctx context.Context, m blockstore.Meta) bool {
	d.repub.schedule(m.ID, d.now().Add(d.jitter(d.cfg.RepublishInterval)))
	secs := remainingSeconds(m, d.now())
	if secs == 0 {
		return false
	}
	data, _, err := d.cfg.Store.Get(ctx, m.ID)
	if err != nil {
		return false
	}
	closest, _, err := d.Lookup(ctx, m.ID)
	if err != nil {
		d.log.Debug("kademlia: republish lookup failed", "id", m.ID.Short(), "err", err)
		return false
	}
	// The lifetime left after the lookup, which may take seconds: taken
	// before it, every republish would lengthen the block's life by the
	// lookup's time.
	if secs = remainingSeconds(m, d.now()); secs == 0 {
		return false
	}
	// This node holds the block already; the others get it.
	n := d.holders(m.Type)
	closest = d.placement(m.ID, closest, n, m.Type)
	among := d.selfAmong(m.ID, closest, n)
	if among && len(closest) == n {
		closest = closest[:n-1]
	}
	store := Store{Lifetime: secs, Block: data}
	ok, _ := fanOut(ctx, closest, func(ctx context.Context, c transport.Contact) error {
		_, err := expect[Stored](d.request(ctx, c, store))
		if m.Type == block.TypeRecord && errors.Is(err, record.ErrStale) {
			// c holds a newer version than ours: take it.
			d.pullNewer(ctx, c, m.ID)
		}
		if err != nil {
			d.log.Debug("kademlia: republish store refused or failed", "id", m.ID.Short(), "to", c.ID.Short(), "err", err)
		}
		return err
	})
	d.log.Debug("kademlia: republished", "id", m.ID.Short(), "stored", ok, "of", len(closest), "self_among", among)
	if !among && m.Type == block.TypeData && ok == n {
		d.handOff(ctx, m.ID)
	}
	return ok > 0
}

// handOff drops a data block this node no longer needs to hold: it is
// not among the R closest live nodes, and all R of them acknowledged the
// block (docs/PROTOCOL.md 9.7). No tombstone: the block may come back
// here if the closest nodes change again.
func (d *DHT) handOff(ctx context.Context, id block.ID) {
	if err := d.cfg.Store.Drop(ctx, id); err != nil && !errors.Is(err, blockstore.ErrNotFound) {
		d.log.Warn("kademlia: dropping a handed-off block", "id", id.Short(), "err", err)
		return
	}
	d.repub.forget(id)
	d.stats.handedOff.Add(1)
}
