package blockstore

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/flowmail/flowmail/block"
)

// memoryStore keeps blocks in maps. It reads no clock but Config.Clock and
// starts no goroutine, so thousands of simulated nodes can each hold one.
type memoryStore struct {
	cfg Config

	mu         sync.Mutex
	closed     bool
	blocks     map[block.ID]*memBlock
	tombstones map[block.ID]time.Time
	deadlines  deadlineHeap
	index      idSet // IDs of held index blocks, for List
	evictable  idSet // distances from Self of unpinned blocks, for eviction
	stats      Stats
	budgets    *budgets
}

type memBlock struct {
	data []byte
	meta Meta
}

// NewMemory returns a store that holds everything in memory. It never
// re-hashes on Get: it keeps private copies, so bytes cannot change under
// it.
func NewMemory(cfg Config) Store {
	cfg = cfg.withDefaults()
	return &memoryStore{
		cfg:        cfg,
		blocks:     make(map[block.ID]*memBlock),
		tombstones: make(map[block.ID]time.Time),
		budgets:    newBudgets(cfg),
	}
}

func (s *memoryStore) Put(ctx context.Context, b []byte, lifetime time.Duration, opt PutOptions) (block.ID, error) {
	now := s.cfg.Clock.Now()
	a, err := admit(b, lifetime, now)
	if err != nil {
		return block.ID{}, err
	}
	if !a.verified {
		// As in the Badger store: a record held already costs no
		// signature check, and none runs under the lock.
		held, err := s.holds(ctx, a.key, a.id)
		if err != nil {
			return a.key, err
		}
		if !held {
			if err := a.verify(); err != nil {
				return a.key, err
			}
		}
	}
	id, err := s.put(ctx, a, opt, now)
	if errors.Is(err, errUnverified) {
		// The held version changed meanwhile.
		if err := a.verify(); err != nil {
			return a.key, err
		}
		return s.put(ctx, a, opt, now)
	}
	return id, err
}

// errUnverified: put was handed an unverified record that is not the one
// held.
var errUnverified = errors.New("blockstore: record not verified")

// holds reports whether the block id is kept at key.
func (s *memoryStore) holds(ctx context.Context, key, id block.ID) (bool, error) {
	if err := s.enter(ctx, s.cfg.Clock.Now()); err != nil {
		return false, err
	}
	defer s.mu.Unlock()
	held, ok := s.blocks[key]
	return ok && held.meta.BlockID == id, nil
}

// put keeps an admitted block; a is verified, or its bytes are held at
// a.key (then it is a re-store).
func (s *memoryStore) put(ctx context.Context, a admitted, opt PutOptions, now time.Time) (block.ID, error) {
	if err := s.enter(ctx, now); err != nil {
		return a.key, err
	}
	defer s.mu.Unlock()
	dist := block.Xor(a.key, s.cfg.Self)
	held, replacing := s.blocks[a.key]
	if replacing && held.meta.BlockID == a.id {
		// The same block again.
		if expires, moved := extension(held.meta.Expires, a.expires, now); moved {
			held.meta.Expires = expires
			heap.Push(&s.deadlines, deadline{at: expires, id: a.key})
		}
		if opt.Pinned && !held.meta.Pinned {
			held.meta.Pinned = true
			s.evictable.remove(dist)
		}
		return a.key, nil
	}
	if !a.verified {
		return a.key, errUnverified
	}
	if replacing {
		// Another version of a record's slot: the held one decides.
		if err := supersede(held.data, a); err != nil {
			return a.key, err
		}
	}
	if until, ok := s.tombstones[a.key]; ok {
		return a.key, fmt.Errorf("%w: %v is refused until %v", ErrDeleted, a.key.Short(), until)
	}
	size := int64(len(a.data))
	var freed int64 // the version a record replaces leaves room
	if replacing {
		freed = int64(held.meta.Size)
	}
	if need := s.stats.Bytes - freed + size - s.cfg.QuotaBytes; s.cfg.QuotaBytes > 0 && need > 0 {
		if !opt.Pinned && !s.budgets.allows(opt.Source, size, nil, now) {
			s.stats.OverBudget++
			return a.key, fmt.Errorf("%w: %d bytes for %+v while the store is full", ErrOverBudget, size, opt.Source)
		}
		victims, err := planEviction(need, dist, opt.Pinned, others(dist, s.farthest))
		if err != nil {
			return a.key, err
		}
		for _, d := range victims {
			s.drop(block.Xor(d, s.cfg.Self))
			s.stats.Evicted++
		}
	}
	if replacing {
		s.drop(a.key)
	}
	s.blocks[a.key] = &memBlock{
		data: append([]byte(nil), a.data...),
		meta: Meta{ID: a.key, BlockID: a.id, Type: a.header.Type, Size: len(a.data), StoredAt: now, Expires: a.expires, Pinned: opt.Pinned},
	}
	heap.Push(&s.deadlines, deadline{at: a.expires, id: a.key})
	if a.header.Type == block.TypeIndex {
		s.index.insert(a.key)
	}
	if !opt.Pinned {
		s.evictable.insert(dist)
		s.budgets.add(opt.Source, size, now)
	}
	s.stats.Blocks++
	s.stats.Bytes += size
	return a.key, nil
}

// farthest yields unpinned blocks by distance from self, farthest first.
func (s *memoryStore) farthest(yield func(block.ID, int64) bool) {
	for i := len(s.evictable) - 1; i >= 0; i-- {
		d := s.evictable[i]
		if !yield(d, int64(s.blocks[block.Xor(d, s.cfg.Self)].meta.Size)) {
			return
		}
	}
}

// enter checks ctx, takes the lock and settles expiry at now. Unless it
// returns an error, the caller holds the lock.
func (s *memoryStore) enter(ctx context.Context, now time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.expire(now)
	return nil
}

// drop forgets a held block and its bytes.
func (s *memoryStore) drop(id block.ID) {
	held := s.blocks[id]
	delete(s.blocks, id)
	if held.meta.Type == block.TypeIndex {
		s.index.remove(id)
	}
	if !held.meta.Pinned {
		s.evictable.remove(block.Xor(id, s.cfg.Self))
	}
	s.stats.Blocks--
	s.stats.Bytes -= int64(held.meta.Size)
}

// expire drops the blocks and tombstones whose time has come, so counters
// are exact whenever the lock is released.
func (s *memoryStore) expire(now time.Time) {
	for len(s.deadlines) > 0 && !notExpired(s.deadlines[0].at, now) {
		d := heap.Pop(&s.deadlines).(deadline)
		if d.tombstone {
			if until, ok := s.tombstones[d.id]; ok && until.Equal(d.at) {
				delete(s.tombstones, d.id)
			}
			continue
		}
		// A re-store that extended the expiry left this deadline stale.
		if held, ok := s.blocks[d.id]; ok && held.meta.Expires.Equal(d.at) {
			s.drop(d.id)
			s.stats.Expired++
		}
	}
}

func (s *memoryStore) Get(ctx context.Context, id block.ID) ([]byte, Meta, error) {
	held, err := s.lookup(ctx, id, true)
	if err != nil {
		return nil, Meta{}, err
	}
	return held.data, held.meta, nil
}

func (s *memoryStore) Stat(ctx context.Context, id block.ID) (Meta, error) {
	held, err := s.lookup(ctx, id, false)
	return held.meta, err
}

// lookup returns a held block, with a copy of its bytes when withData
// (so callers cannot alter the store; Stat needs none).
func (s *memoryStore) lookup(ctx context.Context, id block.ID, withData bool) (memBlock, error) {
	if err := s.enter(ctx, s.cfg.Clock.Now()); err != nil {
		return memBlock{}, err
	}
	defer s.mu.Unlock()
	held, ok := s.blocks[id]
	switch {
	case !ok:
		return memBlock{}, notFound(id)
	case !withData:
		return memBlock{meta: held.meta}, nil
	}
	return memBlock{data: append([]byte(nil), held.data...), meta: held.meta}, nil
}

func (s *memoryStore) Delete(ctx context.Context, id block.ID, preimage [32]byte) error {
	if err := s.enter(ctx, s.cfg.Clock.Now()); err != nil {
		return err
	}
	defer s.mu.Unlock()
	held, ok := s.blocks[id]
	if !ok {
		if _, ok := s.tombstones[id]; ok {
			return fmt.Errorf("%w: %v already", ErrDeleted, id.Short())
		}
		return notFound(id)
	}
	h, _, err := block.ParseHeader(held.data)
	if err != nil {
		return fmt.Errorf("%w: held block %v: %w", ErrCorrupt, id.Short(), err)
	}
	if err := authorizeDeletion(id, h.Type, h.HasDeletion, h.DeletionHash, preimage); err != nil {
		return err
	}
	s.drop(id)
	s.tombstones[id] = held.meta.Expires
	heap.Push(&s.deadlines, deadline{at: held.meta.Expires, id: id, tombstone: true})
	return nil
}

func (s *memoryStore) PutMany(ctx context.Context, bs [][]byte, lifetime time.Duration, opt PutOptions) ([]block.ID, []error) {
	ids, errs := make([]block.ID, len(bs)), make([]error, len(bs))
	for i, b := range bs {
		ids[i], errs[i] = s.Put(ctx, b, lifetime, opt)
	}
	return ids, errs
}

func (s *memoryStore) DeleteMany(ctx context.Context, ids []block.ID, preimages [][32]byte) []error {
	errs := make([]error, len(ids))
	for i, id := range ids {
		errs[i] = s.Delete(ctx, id, preimages[i])
	}
	return errs
}

func (s *memoryStore) Drop(ctx context.Context, id block.ID) error {
	if err := s.enter(ctx, s.cfg.Clock.Now()); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, ok := s.blocks[id]; !ok {
		return notFound(id)
	}
	s.drop(id)
	return nil
}

func (s *memoryStore) List(ctx context.Context, target block.ID, bits int, since time.Time, after *block.ID, limit int) ([]ListEntry, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	lo, hi, err := listBounds(target, bits, after, limit)
	if err != nil || block.Less(hi, lo) {
		return nil, false, err
	}
	if err := s.enter(ctx, s.cfg.Clock.Now()); err != nil {
		return nil, false, err
	}
	defer s.mu.Unlock()
	var entries []ListEntry
	i, _ := s.index.search(lo)
	for _, id := range s.index[i:] {
		if block.Less(hi, id) {
			break
		}
		m := s.blocks[id].meta
		if m.StoredAt.Before(since) {
			continue
		}
		if len(entries) == limit {
			return entries, true, nil
		}
		entries = append(entries, ListEntry{ID: id, StoredAt: m.StoredAt})
	}
	return entries, false, nil
}

func (s *memoryStore) Range(ctx context.Context, fn func(Meta) error) error {
	if err := s.enter(ctx, s.cfg.Clock.Now()); err != nil {
		return err
	}
	metas := make([]Meta, 0, len(s.blocks))
	for _, held := range s.blocks {
		metas = append(metas, held.meta)
	}
	s.mu.Unlock()
	// fn runs without the lock, so it may call the store.
	for _, m := range metas {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

// Sweep drops expired blocks and tombstones now. Every other method does
// so too; Sweep lets callers drive both stores the same way.
func (s *memoryStore) Sweep(ctx context.Context) error {
	if err := s.enter(ctx, s.cfg.Clock.Now()); err != nil {
		return err
	}
	defer s.mu.Unlock()
	return nil
}

func (s *memoryStore) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.expire(s.cfg.Clock.Now())
	}
	st := s.stats
	st.QuotaBytes = max(s.cfg.QuotaBytes, 0)
	return st
}

func (s *memoryStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.blocks, s.tombstones, s.deadlines, s.index, s.evictable = nil, nil, nil, nil, nil
	return nil
}

// deadline is when a block or a tombstone expires.
type deadline struct {
	at        time.Time
	id        block.ID
	tombstone bool
}

// deadlineHeap orders deadlines, earliest first (container/heap).
type deadlineHeap []deadline

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h deadlineHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *deadlineHeap) Push(x any)        { *h = append(*h, x.(deadline)) }
func (h *deadlineHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	*h = old[:len(old)-1]
	return d
}
