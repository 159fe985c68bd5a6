package blockstore

import (
	"errors"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/flowmail/flowmail/block"
)

const (
	// maxBatchOps bounds how many waiting operations share a transaction.
	maxBatchOps = 256
	// sweepBatch bounds how many expired blocks one sweep operation
	// removes, so a sweep fits a transaction.
	sweepBatch = 512
)

type opKind uint8

const (
	opPut opKind = iota
	opDelete
	opSweep
	opDropCorrupt
	opDrop
)

// writeOp is one change waiting for the writer.
type writeOp struct {
	kind     opKind
	now      time.Time
	put      admitted // opPut
	pinned   bool     // opPut
	source   Source   // opPut
	sync     bool     // opPut: on disk before the reply
	id       block.ID // opDelete, opDropCorrupt, opDrop
	preimage [32]byte // opDelete
	swept    int      // opSweep: blocks removed, set before the reply
	reply    chan error
}

// writer applies waiting operations, as many per transaction as are
// queued, until Close.
func (s *badgerStore) writer() {
	defer s.wg.Done()
	batch := make([]*writeOp, 0, maxBatchOps)
	for {
		select {
		case <-s.stop:
			// Only ops whose callers gave up waiting can be left.
			for {
				select {
				case op := <-s.writes:
					op.reply <- ErrClosed
				default:
					return
				}
			}
		case <-s.collect:
			s.collectGarbage()
		case op := <-s.writes:
			batch = append(batch[:0], op)
		gather:
			for len(batch) < maxBatchOps {
				select {
				case op := <-s.writes:
					batch = append(batch, op)
				default:
					break gather
				}
			}
			for len(batch) > 0 {
				batch = batch[s.commitPrefix(batch):]
			}
			if s.garbage >= s.gcTrigger() {
				s.collectGarbage()
			}
		}
	}
}

// commitPrefix commits the longest prefix of ops that fits one Badger
// transaction, replies to those ops, and returns how many it handled.
func (s *badgerStore) commitPrefix(ops []*writeOp) int {
	n := len(ops)
	for {
		results, c, fit, err := s.tryCommit(ops[:n])
		if errors.Is(err, badger.ErrTxnTooBig) && n > 1 {
			n = max(fit, 1)
			continue
		}
		switch {
		case errors.Is(err, badger.ErrTxnTooBig):
			// One op alone: a Put that would evict more blocks than a
			// transaction can delete.
			err = fmt.Errorf("%w: making room takes more changes than one transaction holds: %w", ErrFull, err)
		case err != nil:
			err = fmt.Errorf("blockstore: committing to Badger: %w", err)
		default:
			s.mu.Lock()
			s.counters = c
			s.mu.Unlock()
			for _, p := range s.pending {
				s.budgets.add(p.src, p.size, ops[0].now)
			}
			for _, r := range results[:n] {
				if errors.Is(r, ErrOverBudget) {
					s.overBudget.Add(1)
				}
			}
			// A Sync Put waits for the disk; the others' changes go
			// with the next sync.
			if slices.ContainsFunc(ops[:n], func(op *writeOp) bool { return op.sync }) {
				if serr := s.sync(); serr != nil {
					for i, op := range ops[:n] {
						if op.sync && results[i] == nil {
							results[i] = serr
						}
					}
				}
			}
		}
		for i, op := range ops[:n] {
			if err != nil {
				op.reply <- err
			} else {
				op.reply <- results[i]
			}
		}
		return n
	}
}

// tryCommit applies ops in one transaction with the counters and commits
// it, without a sync (commitPrefix syncs for a Sync Put). results
// holds each op's own outcome; fit is how many ops fitted when err is
// badger.ErrTxnTooBig.
func (s *badgerStore) tryCommit(ops []*writeOp) (results []error, c counters, fit int, err error) {
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	s.pending = s.pending[:0]
	s.mu.Lock()
	c = s.counters
	s.mu.Unlock()
	results = make([]error, len(ops))
	for i, op := range ops {
		if results[i], err = s.apply(txn, &c, op); err != nil {
			return nil, c, i, err
		}
	}
	s.mu.Lock()
	changed := c != s.counters
	s.mu.Unlock()
	if changed {
		if err := txn.Set([]byte{familyCounters}, c.encode()); err != nil {
			return nil, c, len(ops) - 1, err
		}
	}
	// A batch that changed nothing (replays) commits nothing: no write,
	// no sync.
	if err := txn.Commit(); err != nil {
		return nil, c, len(ops), err
	}
	s.unsynced.Store(true)
	return results, c, len(ops), nil
}

// apply makes op's changes in txn. result is what the op's caller gets;
// err is a storage failure that aborts the transaction.
func (s *badgerStore) apply(txn *badger.Txn, c *counters, op *writeOp) (result, err error) {
	switch op.kind {
	case opPut:
		return s.applyPut(txn, c, op)
	case opDelete:
		return s.applyDelete(txn, c, op)
	case opSweep:
		op.swept, err = s.sweepExpired(txn, c, op.now, sweepBatch)
		return nil, err
	case opDropCorrupt:
		return nil, s.applyDropCorrupt(txn, c, op.id)
	case opDrop:
		r, held, err := s.current(txn, c, op.id, op.now)
		if err != nil || !held {
			return notFound(op.id), err
		}
		return nil, s.remove(txn, c, op.id, r)
	}
	return nil, fmt.Errorf("blockstore: unknown write op %d", op.kind)
}

// current returns the metadata of a live block. A block found expired is
// removed (and counted) here, so the caller sees it as missing.
func (s *badgerStore) current(txn *badger.Txn, c *counters, id block.ID, now time.Time) (metaRecord, bool, error) {
	r, ok, err := getMeta(txn, id)
	if err != nil || !ok {
		return r, false, err
	}
	if notExpired(r.expires, now) {
		return r, true, nil
	}
	c.expired++
	return r, false, s.remove(txn, c, id, r)
}

func (s *badgerStore) applyPut(txn *badger.Txn, c *counters, op *writeOp) (result, err error) {
	a := op.put
	r, held, err := s.current(txn, c, a.key, op.now)
	if err != nil {
		return nil, err
	}
	replacing := false
	if held {
		if r.blockID(a.key) == a.id {
			// The same block again.
			return nil, s.extend(txn, a, r, op.pinned, op.now)
		}
		// Another version of a record's slot: the held one decides.
		old, err := s.heldBytes(txn, a.key, r)
		if err != nil {
			return nil, err
		}
		if old == nil {
			// The held version's bytes are damaged: it goes, as a Get
			// would drop it, and the new one takes the slot.
			s.cfg.Logger.Warn("blockstore: dropping corrupt block", "id", a.key.String())
			c.corrupt++
			if err := s.remove(txn, c, a.key, r); err != nil {
				return nil, err
			}
		} else if refusal := supersede(old, a); refusal != nil {
			return refusal, nil
		} else {
			replacing = true
		}
	}
	if until, ok, err := getTombstone(txn, a.key); err != nil {
		return nil, err
	} else if ok && notExpired(until, op.now) {
		return fmt.Errorf("%w: %v is refused until %v", ErrDeleted, a.key.Short(), until), nil
	}
	size := int64(len(a.data))
	var freed int64 // the version a record replaces leaves room
	if replacing {
		freed = int64(r.size)
	}
	dist := block.Xor(a.key, s.cfg.Self)
	if quota := s.cfg.QuotaBytes; quota > 0 && int64(c.bytes)-freed+size > quota {
		// Expired blocks make room before any live one is evicted.
		if _, err := s.sweepExpired(txn, c, op.now, sweepBatch); err != nil {
			return nil, err
		}
		if need := int64(c.bytes) - freed + size - quota; need > 0 {
			if !op.pinned && !s.budgets.allows(op.source, size, s.pending, op.now) {
				return fmt.Errorf("%w: %d bytes for %+v while the store is full", ErrOverBudget, size, op.source), nil
			}
			var iterErr error
			victims, full := planEviction(need, dist, op.pinned, others(dist, farthest(txn, &iterErr)))
			if iterErr != nil {
				return nil, iterErr
			}
			if full != nil {
				return full, nil
			}
			for _, d := range victims {
				if err := s.evict(txn, c, block.Xor(d, s.cfg.Self)); err != nil {
					return nil, err
				}
			}
		}
	}
	if replacing {
		if err := s.remove(txn, c, a.key, r); err != nil {
			return nil, err
		}
	}
	r = newMeta(a, op.pinned, op.now)
	if err := txn.Set(idKey(familyBlock, a.key), blockValue(r, a.data)); err != nil {
		return nil, err
	}
	if !op.pinned {
		s.pending = append(s.pending, charge{op.source, size})
	}
	return nil, s.link(txn, c, a.key, r)
}

// heldBytes reads the bytes kept at key, nil when they no longer match
// their metadata's checksum.
func (s *badgerStore) heldBytes(txn *badger.Txn, key block.ID, r metaRecord) ([]byte, error) {
	item, err := txn.Get(idKey(familyBlock, key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, err
	}
	p, b, err := decodeBlockValue(v)
	if err != nil || p.size != r.size || p.sum != r.sum {
		return nil, nil
	}
	return b, nil
}

// extend applies a re-store of a held block: a later expiry (when it
// moves enough, see extension), and a pin once asked for. It rewrites
// the metadata and 'b' (which repeats it), and nothing when neither
// changes. The stored-at
// time stays.
func (s *badgerStore) extend(txn *badger.Txn, a admitted, r metaRecord, pin bool, now time.Time) error {
	nr := r
	nr.expires, _ = extension(r.expires, a.expires, now)
	nr.pinned = r.pinned || pin
	if nr.expires.Equal(r.expires) && nr.pinned == r.pinned {
		return nil
	}
	var c counters // unlink and link count the same block out and in
	if err := s.unlink(txn, &c, a.key, r); err != nil {
		return err
	}
	if err := s.link(txn, &c, a.key, nr); err != nil {
		return err
	}
	// 'b' repeats the metadata for Get: rewrite it with the held bytes
	// (Put checked they are a.data), which leaves the old value as
	// garbage.
	s.garbage += int64(r.size)
	return txn.Set(idKey(familyBlock, a.key), blockValue(nr, a.data))
}

func (s *badgerStore) evict(txn *badger.Txn, c *counters, id block.ID) error {
	r, ok, err := getMeta(txn, id)
	if err != nil {
		return err
	}
	if !ok {
		// A distance key without its block: remove the stray key.
		return txn.Delete(idKey(familyDistance, block.Xor(id, s.cfg.Self)))
	}
	c.evicted++
	return s.remove(txn, c, id, r)
}

func (s *badgerStore) applyDelete(txn *badger.Txn, c *counters, op *writeOp) (result, err error) {
	r, held, err := s.current(txn, c, op.id, op.now)
	if err != nil {
		return nil, err
	}
	if !held {
		if until, ok, err := getTombstone(txn, op.id); err != nil {
			return nil, err
		} else if ok && notExpired(until, op.now) {
			return fmt.Errorf("%w: %v already", ErrDeleted, op.id.Short()), nil
		}
		return notFound(op.id), nil
	}
	// The deletion hash is in the metadata: the block is neither read nor
	// hashed.
	if err := authorizeDeletion(op.id, r.typ, r.hasDeletion, r.deletion, op.preimage); err != nil {
		return err, nil
	}
	if err := s.remove(txn, c, op.id, r); err != nil {
		return nil, err
	}
	// The tombstone joins the expiry queue; the 'e' key the block left is
	// the same key, set again.
	if err := txn.Set(idKey(familyTombstone, op.id), timeValue(r.expires)); err != nil {
		return nil, err
	}
	return nil, txn.Set(expiryKey(r.expires, op.id), nil)
}

// applyDropCorrupt removes a block a Get found damaged, after checking
// again under the writer: a correct copy stored since stays.
func (s *badgerStore) applyDropCorrupt(txn *badger.Txn, c *counters, id block.ID) error {
	r, ok, err := getMeta(txn, id)
	if errors.Is(err, ErrCorrupt) {
		return s.removeDamaged(txn, c, id)
	}
	if err != nil || !ok {
		return err
	}
	item, err := txn.Get(idKey(familyBlock, id))
	if err == nil {
		var intact bool
		err = item.Value(func(v []byte) error {
			p, _, err := decodeBlockValue(v)
			intact = err == nil && p.size == r.size && p.sum == r.sum
			return nil
		})
		if err != nil || intact {
			return err
		}
	} else if !errors.Is(err, badger.ErrKeyNotFound) {
		return err
	}
	s.cfg.Logger.Warn("blockstore: dropping corrupt block", "id", id.String())
	c.corrupt++
	return s.remove(txn, c, id, r)
}

// removeDamaged removes a block whose metadata does not decode: every key
// it can have but its 'e' entry (unknown; a sweep drops it later), counted
// out with the size of its bytes when they are still there.
func (s *badgerStore) removeDamaged(txn *badger.Txn, c *counters, id block.ID) error {
	s.cfg.Logger.Warn("blockstore: dropping block with damaged metadata", "id", id.String())
	item, err := txn.Get(idKey(familyBlock, id))
	switch {
	case err == nil:
		// The size in front of the bytes when it decodes, else the whole
		// value's.
		size := uint64(item.ValueSize())
		if err := item.Value(func(v []byte) error {
			if p, _, err := decodeBlockValue(v); err == nil {
				size = uint64(p.size)
			}
			return nil
		}); err != nil {
			return err
		}
		c.bytes -= min(size, c.bytes)
	case !errors.Is(err, badger.ErrKeyNotFound):
		return err
	}
	c.blocks -= min(1, c.blocks)
	c.corrupt++
	for _, k := range [][]byte{idKey(familyBlock, id), idKey(familyMeta, id), idKey(familyDistance, block.Xor(id, s.cfg.Self)), idKey(familyIndex, id)} {
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// sweepExpired removes up to limit blocks whose expiry is at or before now,
// walking the expiry queue from its start.
func (s *badgerStore) sweepExpired(txn *badger.Txn, c *counters, now time.Time, limit int) (int, error) {
	type due struct {
		key []byte
		id  block.ID
	}
	var expired []due
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{familyExpiry}})
	end := unixNanos(now)
	for it.Rewind(); it.Valid() && len(expired) < limit; it.Next() {
		k := it.Item().KeyCopy(nil)
		id, err := parseFamilyKey(k, 1+8+block.IDSize)
		if err != nil {
			it.Close()
			return 0, err
		}
		if decodeExpiryKeyTime(k) > end {
			break
		}
		expired = append(expired, due{k, id})
	}
	it.Close()
	for _, d := range expired {
		r, ok, err := getMeta(txn, d.id)
		if err != nil {
			return 0, err
		}
		if !ok || unixNanos(r.expires) != decodeExpiryKeyTime(d.key) {
			// A tombstone whose time has come, or a queue entry outliving
			// its block: drop the entry, and the tombstone it names.
			if until, ok, err := getTombstone(txn, d.id); err != nil {
				return 0, err
			} else if ok && unixNanos(until) == decodeExpiryKeyTime(d.key) {
				if err := txn.Delete(idKey(familyTombstone, d.id)); err != nil {
					return 0, err
				}
			}
			if err := txn.Delete(d.key); err != nil {
				return 0, err
			}
			continue
		}
		c.expired++
		if err := s.remove(txn, c, d.id, r); err != nil {
			return 0, err
		}
	}
	return len(expired), nil
}

// link writes the metadata keys of a block and counts it; the block's
// bytes ('b') are written by the caller, once.
func (s *badgerStore) link(txn *badger.Txn, c *counters, id block.ID, r metaRecord) error {
	entries := []*badger.Entry{
		{Key: idKey(familyMeta, id), Value: r.encode()},
		{Key: expiryKey(r.expires, id)},
	}
	if !r.pinned {
		entries = append(entries, &badger.Entry{Key: idKey(familyDistance, block.Xor(id, s.cfg.Self)), Value: sizeValue(r.size)})
	}
	if r.typ == block.TypeIndex {
		entries = append(entries, &badger.Entry{Key: idKey(familyIndex, id), Value: indexValue(r)})
	}
	for _, e := range entries {
		if err := txn.SetEntry(e); err != nil {
			return err
		}
	}
	c.blocks++
	c.bytes += uint64(r.size)
	return nil
}

// unlink deletes the metadata keys of a held block and counts it out.
func (s *badgerStore) unlink(txn *badger.Txn, c *counters, id block.ID, r metaRecord) error {
	keys := [][]byte{idKey(familyMeta, id), expiryKey(r.expires, id)}
	if !r.pinned {
		keys = append(keys, idKey(familyDistance, block.Xor(id, s.cfg.Self)))
	}
	if r.typ == block.TypeIndex {
		keys = append(keys, idKey(familyIndex, id))
	}
	for _, k := range keys {
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	c.blocks--
	c.bytes -= uint64(r.size)
	return nil
}

// remove deletes every key of a held block, its bytes included, and
// counts it out.
func (s *badgerStore) remove(txn *badger.Txn, c *counters, id block.ID, r metaRecord) error {
	if err := txn.Delete(idKey(familyBlock, id)); err != nil {
		return err
	}
	s.garbage += int64(r.size)
	return s.unlink(txn, c, id, r)
}

func getTombstone(txn *badger.Txn, id block.ID) (until time.Time, ok bool, err error) {
	item, err := txn.Get(idKey(familyTombstone, id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return until, false, nil
	}
	if err != nil {
		return until, false, err
	}
	err = item.Value(func(v []byte) error {
		until, err = decodeTime(v)
		return err
	})
	return until, err == nil, err
}

// farthest yields the unpinned blocks as (distance, size), farthest first:
// a reverse walk of the distance family. A read failure ends the walk and
// is left in *errp.
func farthest(txn *badger.Txn, errp *error) iter.Seq2[block.ID, int64] {
	return func(yield func(block.ID, int64) bool) {
		it := txn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: []byte{familyDistance}})
		defer it.Close()
		past := make([]byte, 1+block.IDSize+1)
		for i := range past {
			past[i] = 0xff
		}
		past[0] = familyDistance
		for it.Seek(past); it.Valid(); it.Next() {
			item := it.Item()
			d, err := parseFamilyKey(item.Key(), 1+block.IDSize)
			if err != nil {
				*errp = err
				return
			}
			var size int64
			if err := item.Value(func(v []byte) error {
				size, err = decodeSize(v)
				return err
			}); err != nil {
				*errp = err
				return
			}
			if !yield(d, size) {
				return
			}
		}
	}
}

// Value-log garbage collection. Badger picks a value-log file to rewrite
// from discard statistics that only compactions update, and a memtable
// holding just keys of blocks flushes rarely: with 256 KiB blocks a 4 MiB
// memtable covers over a gigabyte of values, all of it garbage once
// evicted, and the disk grew to 5x the quota under a flood (issue 10). So
// the writer flushes and compacts level 0 (by dropping a marker key,
// which is what Badger's DropPrefix does first) once the blocks removed
// since the last collection add up to gcTrigger bytes, then rewrites
// every file at least gcDiscardRatio garbage. The writer runs it between
// batches: Puts wait meanwhile, which slows a flood down where it comes
// from.
const (
	gcDiscardRatio = 0.25
	// gcMaxFiles bounds the files one collection rewrites.
	gcMaxFiles = 64
)

// gcTrigger is how many bytes of removed blocks make the writer collect:
// one value-log file's worth.
func (s *badgerStore) gcTrigger() int64 { return valueLogFileSize(s.cfg) }

// collectGarbage flushes the memtables, compacts level 0 and rewrites
// value-log files that are mostly garbage.
func (s *badgerStore) collectGarbage() {
	s.garbage = 0
	marker := []byte{familyFlush}
	err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(marker, nil) })
	if err == nil {
		err = s.db.DropPrefix(marker)
	}
	if err != nil {
		s.cfg.Logger.Warn("blockstore: flushing before value-log GC failed", "err", err)
		return
	}
	for range gcMaxFiles {
		err := s.db.RunValueLogGC(gcDiscardRatio)
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			return
		}
		if err != nil {
			s.cfg.Logger.Warn("blockstore: value-log GC failed", "err", err)
			return
		}
	}
}
