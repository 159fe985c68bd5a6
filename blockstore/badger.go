package blockstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/flowmail/flowmail/block"
)

// badgerStore keeps blocks in a Badger directory (key layout in
// badger_layout.go). Reads run concurrently on Badger snapshots; every
// change goes through one writer goroutine that applies whatever Puts,
// Deletes and sweeps are waiting in one transaction and one sync (group
// commit), so a Put is acknowledged only once it is on disk, and the
// decisions that read state (tombstones, quota, eviction, counters) never
// race.
type badgerStore struct {
	cfg  Config
	db   *badger.DB
	life lifecycle

	writes chan *writeOp
	stop   chan struct{} // closed once no call is in progress: the writer ends
	bg     context.Context
	cancel context.CancelFunc // ends maintenance work in progress
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error

	mu       sync.Mutex
	counters counters // as last committed

	budgets    *budgets
	overBudget atomic.Uint64
	// unsynced: a commit since the last sync; syncs counts syncs.
	// syncMu orders syncs: a Sync Put's sync must not return while the
	// interval's sync that took its unsynced mark is still running.
	syncMu   sync.Mutex
	unsynced atomic.Bool
	syncs    atomic.Uint64

	// Writer-only state: charges of the transaction being built, and the
	// bytes of blocks removed since value-log GC last ran.
	pending []charge
	garbage int64
	collect chan struct{} // the GC ticker asks the writer to collect
}

// OpenBadger opens (or creates) a store in dir. A directory remembers the
// Self it was created for, since its eviction order depends on it.
func OpenBadger(dir string, cfg Config) (Store, error) {
	cfg = cfg.withDefaults()
	if err := probeLock(dir); err != nil {
		return nil, err
	}
	db, err := badger.Open(badgerOptions(dir, cfg))
	if err != nil {
		return nil, fmt.Errorf("blockstore: opening %s: %w", dir, err)
	}
	s := &badgerStore{
		cfg:     cfg,
		db:      db,
		writes:  make(chan *writeOp, maxBatchOps),
		stop:    make(chan struct{}),
		budgets: newBudgets(cfg),
		collect: make(chan struct{}, 1),
	}
	if err := s.load(); err != nil {
		return nil, errors.Join(fmt.Errorf("blockstore: opening %s: %w", dir, err), db.Close())
	}
	s.bg, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(2)
	go s.writer()
	go s.maintain()
	return s, nil
}

// load checks the layout key (writing it into a new directory) and reads
// the counters.
func (s *badgerStore) load() error {
	want := append([]byte{layoutVersion}, s.cfg.Self[:]...)
	return s.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte{familyLayout})
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			return txn.Set([]byte{familyLayout}, want)
		case err != nil:
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		if len(v) == 0 || v[0] != layoutVersion {
			return fmt.Errorf("%w: found %x, this code reads version %d (move the directory away; the network re-stores what this node should hold)", ErrLayout, v[:min(len(v), 1)], layoutVersion)
		}
		if !bytes.Equal(v, want) {
			return fmt.Errorf("%w: created for %x, not %v", ErrOtherNode, v[1:], s.cfg.Self)
		}
		item, err = txn.Get([]byte{familyCounters})
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			s.counters, err = decodeCounters(v)
			return err
		})
	})
}

func (s *badgerStore) Put(ctx context.Context, b []byte, lifetime time.Duration, opt PutOptions) (block.ID, error) {
	if err := ctx.Err(); err != nil {
		return block.ID{}, err
	}
	now := s.cfg.Clock.Now()
	a, err := admit(b, lifetime, now)
	if err != nil {
		return block.ID{}, err
	}
	if unchanged, err := s.replay(ctx, a, opt, now); err != nil || unchanged {
		return a.key, err
	}
	if err := a.verify(); err != nil {
		return a.key, err
	}
	return a.key, s.submit(ctx, &writeOp{kind: opPut, now: now, put: a, pinned: opt.Pinned, source: opt.Source, sync: opt.Sync})
}

func (s *badgerStore) PutMany(ctx context.Context, bs [][]byte, lifetime time.Duration, opt PutOptions) ([]block.ID, []error) {
	ids, errs := make([]block.ID, len(bs)), make([]error, len(bs))
	if err := ctx.Err(); err != nil {
		return ids, fillErr(errs, err)
	}
	if err := s.life.enter(); err != nil {
		return ids, fillErr(errs, err)
	}
	defer s.life.leave()
	now := s.cfg.Clock.Now()
	adm, aerrs := admitMany(bs, lifetime, now)
	ops := make([]*writeOp, len(bs))
	for i := range adm {
		a := &adm[i]
		ids[i], errs[i] = a.key, aerrs[i]
		if errs[i] != nil {
			continue
		}
		unchanged, err := s.replay(ctx, *a, opt, now)
		if err == nil && !unchanged {
			err = a.verify()
		}
		if err != nil || unchanged {
			errs[i] = err
			continue
		}
		ops[i] = &writeOp{kind: opPut, now: now, put: *a, pinned: opt.Pinned, source: opt.Source, sync: opt.Sync}
	}
	s.submitEach(ctx, ops, errs)
	return ids, errs
}

// submitEach hands the writer every op (nil: none at that position)
// before it waits for any reply, so they commit together; errs[i] gets
// op i's result, or ctx's error if it was not sent or not answered (the
// writer may still commit it then; it is not acknowledged).
func (s *badgerStore) submitEach(ctx context.Context, ops []*writeOp, errs []error) {
	for i, op := range ops {
		if op == nil {
			continue
		}
		op.reply = make(chan error, 1)
		select {
		case s.writes <- op:
		case <-ctx.Done():
			errs[i], ops[i] = ctx.Err(), nil
		}
	}
	for i, op := range ops {
		if op == nil {
			continue
		}
		select {
		case errs[i] = <-op.reply:
		case <-ctx.Done():
			errs[i] = ctx.Err()
		}
	}
}

// fillErr sets every entry of errs to err.
func fillErr(errs []error, err error) []error {
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// replay reports whether a Put would change nothing: the block is held
// at its key (a record: these very bytes), its expiry would not move (see
// extension) and its pin would not change. Such a Put returns at once,
// without the writer and, for a record, without checking a signature: a
// flood of replayed STOREs neither writes nor waits for a sync.
func (s *badgerStore) replay(ctx context.Context, a admitted, opt PutOptions, now time.Time) (bool, error) {
	var unchanged bool
	err := s.view(ctx, func(txn *badger.Txn) error {
		r, ok, err := getMeta(txn, a.key)
		if err != nil || !ok || !notExpired(r.expires, now) || r.blockID(a.key) != a.id {
			return err
		}
		_, moved := extension(r.expires, a.expires, now)
		unchanged = !moved && (r.pinned || !opt.Pinned)
		return nil
	})
	if errors.Is(err, ErrCorrupt) {
		// The writer deals with damaged metadata.
		return false, nil
	}
	return unchanged, err
}

func (s *badgerStore) Delete(ctx context.Context, id block.ID, preimage [32]byte) error {
	return s.submit(ctx, &writeOp{kind: opDelete, now: s.cfg.Clock.Now(), id: id, preimage: preimage})
}

// DeleteMany hands the writer every delete before it waits for any, so
// they commit in one transaction: deletes sent one at a time from
// goroutines of their own went to the writer one by one (each woke it
// before the next was sent) and took a commit each.
func (s *badgerStore) DeleteMany(ctx context.Context, ids []block.ID, preimages [][32]byte) []error {
	errs := make([]error, len(ids))
	if err := ctx.Err(); err != nil {
		return fillErr(errs, err)
	}
	if err := s.life.enter(); err != nil {
		return fillErr(errs, err)
	}
	defer s.life.leave()
	now := s.cfg.Clock.Now()
	ops := make([]*writeOp, len(ids))
	for i, id := range ids {
		ops[i] = &writeOp{kind: opDelete, now: now, id: id, preimage: preimages[i]}
	}
	s.submitEach(ctx, ops, errs)
	return errs
}

func (s *badgerStore) Drop(ctx context.Context, id block.ID) error {
	return s.submit(ctx, &writeOp{kind: opDrop, now: s.cfg.Clock.Now(), id: id})
}

// Sweep removes expired blocks now; the store also does so every
// Config.SweepInterval.
func (s *badgerStore) Sweep(ctx context.Context) error {
	for {
		op := &writeOp{kind: opSweep, now: s.cfg.Clock.Now()}
		if err := s.submit(ctx, op); err != nil {
			return err
		}
		if op.swept < sweepBatch {
			return nil
		}
	}
}

// submit hands op to the writer and waits until it is committed.
func (s *badgerStore) submit(ctx context.Context, op *writeOp) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.life.enter(); err != nil {
		return err
	}
	defer s.life.leave()
	op.reply = make(chan error, 1)
	select {
	case s.writes <- op:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-op.reply:
		return err
	case <-ctx.Done():
		// The writer may still commit the op; it is just not acknowledged.
		return ctx.Err()
	}
}

// view runs fn on a read snapshot while the store is open.
func (s *badgerStore) view(ctx context.Context, fn func(txn *badger.Txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.life.enter(); err != nil {
		return err
	}
	defer s.life.leave()
	return s.db.View(fn)
}

func (s *badgerStore) Get(ctx context.Context, id block.ID) ([]byte, Meta, error) {
	now := s.cfg.Clock.Now()
	var r metaRecord
	var b []byte
	var bad error // the stored block changed since Put
	err := s.view(ctx, func(txn *badger.Txn) error {
		// One lookup: 'b' carries the metadata in front of the block.
		item, err := txn.Get(idKey(familyBlock, id))
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		if r, b, err = decodeBlockValue(v); err != nil {
			bad = fmt.Errorf("%v: %w", id.Short(), err)
			return nil
		}
		if !notExpired(r.expires, now) {
			return badger.ErrKeyNotFound
		}
		return nil
	})
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		return nil, Meta{}, notFound(id)
	case err != nil:
		return nil, Meta{}, err
	}
	if bad != nil {
		return nil, Meta{}, s.dropCorrupt(ctx, id, bad)
	}
	return b, r.meta(id), nil
}

// dropCorrupt forgets a block whose stored bytes failed verification, so
// it reads as missing and a correct copy can be stored again.
func (s *badgerStore) dropCorrupt(ctx context.Context, id block.ID, cause error) error {
	s.cfg.Logger.Warn("blockstore: dropping corrupt block", "id", id.String(), "err", cause)
	if err := s.submit(ctx, &writeOp{kind: opDropCorrupt, now: s.cfg.Clock.Now(), id: id}); err != nil {
		cause = errors.Join(cause, err)
	}
	return fmt.Errorf("%w: %w", ErrNotFound, cause)
}

func (s *badgerStore) Stat(ctx context.Context, id block.ID) (Meta, error) {
	var r metaRecord
	var ok bool
	err := s.view(ctx, func(txn *badger.Txn) error {
		var err error
		r, ok, err = getMeta(txn, id)
		return err
	})
	if err != nil {
		return Meta{}, err
	}
	if !ok || !notExpired(r.expires, s.cfg.Clock.Now()) {
		return Meta{}, notFound(id)
	}
	return r.meta(id), nil
}

// getMeta reads the 'm' metadata of id; ok is false when none exists.
func getMeta(txn *badger.Txn, id block.ID) (r metaRecord, ok bool, err error) {
	return getMetaAt(txn, idKey(familyMeta, id))
}

// getMetaAt is getMeta given the 'm' key.
func getMetaAt(txn *badger.Txn, key []byte) (r metaRecord, ok bool, err error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return metaRecord{}, false, nil
	}
	if err != nil {
		return metaRecord{}, false, err
	}
	err = item.Value(func(v []byte) error {
		r, err = decodeMeta(v)
		return err
	})
	return r, err == nil, err
}

func (s *badgerStore) List(ctx context.Context, target block.ID, bits int, since time.Time, after *block.ID, limit int) ([]ListEntry, bool, error) {
	lo, hi, err := listBounds(target, bits, after, limit)
	if err != nil || block.Less(hi, lo) {
		return nil, false, err
	}
	now := s.cfg.Clock.Now()
	var entries []ListEntry
	more := false
	err = s.view(ctx, func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{familyIndex}})
		defer it.Close()
		last := idKey(familyIndex, hi)
		for it.Seek(idKey(familyIndex, lo)); it.Valid(); it.Next() {
			item := it.Item()
			if bytes.Compare(item.Key(), last) > 0 {
				return nil
			}
			id, err := parseFamilyKey(item.Key(), 1+block.IDSize)
			if err != nil {
				return err
			}
			var storedAt, expires time.Time
			if err := item.Value(func(v []byte) error {
				storedAt, expires, err = decodeIndexValue(v)
				return err
			}); err != nil {
				return err
			}
			if storedAt.Before(since) || !notExpired(expires, now) {
				continue
			}
			if len(entries) == limit {
				more = true
				return nil
			}
			entries = append(entries, ListEntry{ID: id, StoredAt: storedAt})
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return entries, more, nil
}

// rangeChunk is how many records Range reads per snapshot; fn runs between
// snapshots, outside any transaction, so it may call the store.
const rangeChunk = 256

func (s *badgerStore) Range(ctx context.Context, fn func(Meta) error) error {
	seek := []byte{familyMeta}
	for {
		now := s.cfg.Clock.Now()
		var metas []Meta
		var next []byte
		err := s.view(ctx, func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{familyMeta}})
			defer it.Close()
			for it.Seek(seek); it.Valid(); it.Next() {
				item := it.Item()
				if len(metas) == rangeChunk {
					next = item.KeyCopy(nil)
					return nil
				}
				id, err := parseFamilyKey(item.Key(), 1+block.IDSize)
				if err != nil {
					return err
				}
				var r metaRecord
				if err := item.Value(func(v []byte) error {
					r, err = decodeMeta(v)
					return err
				}); err != nil {
					return err
				}
				if notExpired(r.expires, now) {
					metas = append(metas, r.meta(id))
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, m := range metas {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(m); err != nil {
				return err
			}
		}
		if next == nil {
			return nil
		}
		seek = next
	}
}

func (s *badgerStore) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.counters.stats(s.cfg.QuotaBytes)
	st.OverBudget = s.overBudget.Load()
	st.Syncs = s.syncs.Load()
	return st
}

// Close waits for calls in progress, stops the writer and the maintenance
// goroutine, and closes Badger. Calls after Close return ErrClosed.
func (s *badgerStore) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.life.shut()
		close(s.stop)
		s.wg.Wait()
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("blockstore: closing Badger: %w", err)
		}
	})
	return s.closeErr
}

// maintain sweeps expired blocks and collects value-log garbage on their
// intervals until Close.
func (s *badgerStore) maintain() {
	defer s.wg.Done()
	sweep := s.cfg.Clock.NewTicker(s.cfg.SweepInterval)
	defer sweep.Stop()
	gc := s.cfg.Clock.NewTicker(s.cfg.GCInterval)
	defer gc.Stop()
	syncs := s.cfg.Clock.NewTicker(s.cfg.SyncInterval)
	defer syncs.Stop()
	for {
		select {
		case <-s.bg.Done():
			return
		case <-syncs.C:
			if err := s.sync(); err != nil {
				s.cfg.Logger.Warn("blockstore: sync failed", "err", err)
			}
		case <-sweep.C:
			if err := s.Sweep(s.bg); err != nil && s.bg.Err() == nil {
				s.cfg.Logger.Warn("blockstore: sweep failed", "err", err)
			}
		case <-gc.C:
			select {
			case s.collect <- struct{}{}:
			default: // one is already asked for
			}
		}
	}
}

// sync puts the changes committed since the last sync on disk, if any.
func (s *badgerStore) sync() error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if !s.unsynced.Swap(false) {
		return nil
	}
	if err := s.db.Sync(); err != nil {
		s.unsynced.Store(true)
		return fmt.Errorf("blockstore: syncing Badger: %w", err)
	}
	s.syncs.Add(1)
	return nil
}
