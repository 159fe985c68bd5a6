package blockstore

import (
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/goleak"

	"github.com/flowmail/flowmail/block"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openBadger(t *testing.T, cfg Config) Store {
	t.Helper()
	s, err := OpenBadger(t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestBadgerStore(t *testing.T) { runStoreSuite(t, openBadger) }

func TestBadgerStoreSharedFootprint(t *testing.T) {
	runStoreSuite(t, func(t *testing.T, cfg Config) Store {
		cfg.Footprint = FootprintShared
		return openBadger(t, cfg)
	})
}

func TestSharedFootprintIsSmaller(t *testing.T) {
	for _, quota := range []int64{0, 64 << 20, 10 << 30} {
		node := badgerOptions("x", Config{QuotaBytes: quota}.withDefaults())
		shared := badgerOptions("x", Config{QuotaBytes: quota, Footprint: FootprintShared}.withDefaults())
		if shared.MemTableSize >= node.MemTableSize || shared.NumMemtables > node.NumMemtables ||
			shared.BaseTableSize >= node.BaseTableSize || shared.ValueLogFileSize > 8<<20 ||
			shared.ValueLogFileSize > node.ValueLogFileSize {
			t.Fatalf("quota %d: shared footprint %+v not smaller than a node's", quota, shared)
		}
		if shared.SyncWrites != node.SyncWrites || shared.ValueThreshold != node.ValueThreshold {
			t.Fatalf("quota %d: the shared footprint changes durability or layout", quota)
		}
	}
}

// openDir opens a Badger store in dir, closed when t ends.
func openDir(t *testing.T, dir string, cfg Config) Store {
	t.Helper()
	s, err := OpenBadger(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// reopen closes s and opens dir again with cfg.
func reopen(t *testing.T, s Store, dir string, cfg Config) Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return openDir(t, dir, cfg)
}

// keyFamilies counts the keys of each family in a Badger store.
func keyFamilies(t *testing.T, s Store) map[byte]int {
	t.Helper()
	n := map[byte]int{}
	err := s.(*badgerStore).db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n[it.Item().Key()[0]]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("after %v: %s", within, what)
		case <-tick.C:
		}
	}
}

func TestExpiryFollowsTheStoreClockAlone(t *testing.T) {
	// The store's clock is years behind the wall clock: a key with a
	// Badger TTL taken from it would vanish at once.
	clock := newFakeClock(time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC))
	s := openBadger(t, Config{Clock: clock})
	fx := testFixtures(t, 11)
	short, _ := fx.index()
	long, _ := fx.index()
	ctx := t.Context()
	sid, err := s.Put(ctx, short, time.Minute, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lid, err := s.Put(ctx, long, time.Hour, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []block.ID{sid, lid} {
		if _, _, err := s.Get(ctx, id); err != nil {
			t.Fatalf("Get %v on a clock behind the wall clock: %v", id.Short(), err)
		}
	}
	if entries, _, err := s.List(ctx, sid, 0, time.Time{}, nil, 10); err != nil || len(entries) != 2 {
		t.Fatalf("List: %v, %v; want both blocks", entries, err)
	}

	// On the store's clock the short block expires: it is hidden before
	// any sweep, and the sweep removes every key it had.
	clock.Advance(time.Minute)
	if _, _, err := s.Get(ctx, sid); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of an expired block: %v, want ErrNotFound", err)
	}
	if entries, _, err := s.List(ctx, sid, 0, time.Time{}, nil, 10); err != nil || len(entries) != 1 || entries[0].ID != lid {
		t.Fatalf("List after expiry: %v, %v; want only %v", entries, err, lid.Short())
	}
	if err := s.(*badgerStore).Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Blocks != 1 || st.Bytes != int64(len(long)) || st.Expired != 1 {
		t.Fatalf("stats after sweep: %+v", st)
	}
	want := map[byte]int{familyLayout: 1, familyCounters: 1, familyMeta: 1, familyBlock: 1, familyExpiry: 1, familyDistance: 1, familyIndex: 1}
	if got := keyFamilies(t, s); !maps.Equal(got, want) {
		t.Fatalf("keys by family after sweep: %v, want %v", got, want)
	}
}

func TestTombstoneLeavesWithTheSweep(t *testing.T) {
	clock := newFakeClock(time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC))
	s := openBadger(t, Config{Clock: clock})
	ctx := t.Context()
	b, pre := testFixtures(t, 16).data(500)
	id, err := s.Put(ctx, b, time.Hour, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, id, pre); err != nil {
		t.Fatal(err)
	}
	want := map[byte]int{familyLayout: 1, familyCounters: 1, familyTombstone: 1, familyExpiry: 1}
	if got := keyFamilies(t, s); !maps.Equal(got, want) {
		t.Fatalf("keys by family after Delete: %v, want %v", got, want)
	}
	clock.Advance(time.Hour)
	if err := s.(*badgerStore).Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	want = map[byte]int{familyLayout: 1, familyCounters: 1}
	if got := keyFamilies(t, s); !maps.Equal(got, want) {
		t.Fatalf("keys by family after the tombstone expired: %v, want %v", got, want)
	}
	if _, err := s.Put(ctx, b, time.Hour, PutOptions{}); err != nil {
		t.Fatalf("Put after the tombstone expired: %v", err)
	}
}

// keyVersion is the Badger version (commit) of key's newest write.
func keyVersion(t *testing.T, s Store, key []byte) uint64 {
	t.Helper()
	var v uint64
	err := s.(*badgerStore).db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		v = item.Version()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestReStoreWritesOnlyWhenTheMetadataMoves(t *testing.T) {
	clock := newFakeClock(time.Now())
	s := openBadger(t, Config{Clock: clock})
	db := s.(*badgerStore).db
	ctx := t.Context()
	b, _ := testFixtures(t, 17).data(8000)
	id, err := s.Put(ctx, b, 2*time.Hour, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	written := db.MaxVersion()
	blockVersion := keyVersion(t, s, idKey(familyBlock, id))

	// Replays, with the same or a slightly later expiry, write nothing.
	for i := range 50 {
		clock.Advance(time.Second)
		if _, err := s.Put(ctx, b, 2*time.Hour-time.Duration(i%2)*time.Second, PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if db.MaxVersion() != written {
		t.Fatalf("replayed Puts committed %d transactions, want none", db.MaxVersion()-written)
	}

	// An extension by an hour or more, and a pin, rewrite the metadata
	// and 'b', which repeats it in front of the block for Get.
	if _, err := s.Put(ctx, b, 4*time.Hour, PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, b, time.Hour, PutOptions{Pinned: true}); err != nil {
		t.Fatal(err)
	}
	if db.MaxVersion() != written+2 {
		t.Fatalf("extension and pin committed %d transactions, want 2", db.MaxVersion()-written)
	}
	if v := keyVersion(t, s, idKey(familyBlock, id)); v == blockVersion {
		t.Fatalf("'b' was not rewritten with the new metadata (version %d)", v)
	}
	m, err := s.Stat(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Pinned || !m.Expires.Equal(clock.Now().Add(4*time.Hour)) {
		t.Fatalf("meta after extension and pin: %+v", m)
	}
	got, gm, err := s.Get(ctx, id)
	if err != nil || string(got) != string(b) || gm != m {
		t.Fatalf("Get after extension and pin: err %v, meta %+v, want %+v", err, gm, m)
	}
	if got := keyFamilies(t, s); got[familyDistance] != 0 || got[familyExpiry] != 1 {
		t.Fatalf("keys by family after pinning: %v (a pinned block has no distance key, one expiry entry)", got)
	}
}

func TestBadgerSweepsInTheBackground(t *testing.T) {
	clock := newFakeClock(time.Now())
	s := openBadger(t, Config{Clock: clock, SweepInterval: 10 * time.Millisecond, GCInterval: 10 * time.Millisecond})
	b, _ := testFixtures(t, 12).data(5000)
	if _, err := s.Put(t.Context(), b, time.Minute, PutOptions{}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	eventually(t, 5*time.Second, "the background sweep did not remove the expired block", func() bool {
		return s.Stats().Expired == 1
	})
	if st := s.Stats(); st.Blocks != 0 || st.Bytes != 0 {
		t.Fatalf("stats after the sweep: %+v", st)
	}
}

func TestCountersSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock(time.Now())
	fx := testFixtures(t, 13)
	cfg := Config{Self: fx.id(), QuotaBytes: 20 * 1000, Clock: clock}
	s, err := OpenBadger(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	var ids []block.ID
	for i := range 30 {
		b, pre := fx.data(1000)
		lifetime := time.Hour
		if i%7 == 0 {
			lifetime = time.Minute
		}
		id, err := s.Put(ctx, b, lifetime, PutOptions{Pinned: i == 1})
		if errors.Is(err, ErrFull) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if i%5 == 0 {
			if err := s.Delete(ctx, id, pre); err != nil {
				t.Fatal(err)
			}
			continue
		}
		ids = append(ids, id)
	}
	clock.Advance(time.Minute)
	if err := s.(*badgerStore).Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	before := s.Stats()
	if before.Evicted == 0 || before.Expired == 0 || before.Blocks == 0 {
		t.Fatalf("the scenario should evict, expire and keep blocks: %+v", before)
	}
	s = reopen(t, s, dir, cfg)
	if after := s.Stats(); after != before {
		t.Fatalf("stats after reopen %+v, before %+v", after, before)
	}
	var blocks int
	var bytes int64
	if err := s.Range(ctx, func(m Meta) error { blocks++; bytes += int64(m.Size); return nil }); err != nil {
		t.Fatal(err)
	}
	if blocks != before.Blocks || bytes != before.Bytes {
		t.Fatalf("Range finds %d blocks, %d bytes; counters say %d, %d", blocks, bytes, before.Blocks, before.Bytes)
	}
	held := 0
	for _, id := range ids {
		if _, _, err := s.Get(ctx, id); err == nil {
			held++
		}
	}
	if held != before.Blocks {
		t.Fatalf("%d of the stored blocks readable, counters say %d", held, before.Blocks)
	}
}

func TestOpenRefusesAnotherSelf(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenBadger(dir, Config{Self: block.ID{1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err := OpenBadger(dir, Config{Self: block.ID{2}}); !errors.Is(err, ErrOtherNode) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("opening a store created for one node for another: %v, want ErrOtherNode", err)
	}
	s, err = OpenBadger(dir, Config{Self: block.ID{1}})
	if err != nil {
		t.Fatalf("reopening for the same node: %v", err)
	}
	s.Close()
}

func TestOpenRefusesAnotherLayout(t *testing.T) {
	// Layout 1 had Badger TTLs, layout 2 a 'b' value without the metadata
	// in front: both are refused, not misread.
	for _, version := range []byte{1, 2} {
		dir := t.TempDir()
		db, err := badger.Open(badgerOptions(dir, Config{}.withDefaults()))
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(txn *badger.Txn) error {
			return txn.Set([]byte{familyLayout}, append([]byte{version}, make([]byte, block.IDSize)...))
		})
		if err := errors.Join(err, db.Close()); err != nil {
			t.Fatal(err)
		}
		if s, err := OpenBadger(dir, Config{}); !errors.Is(err, ErrLayout) {
			if err == nil {
				s.Close()
			}
			t.Fatalf("opening a layout-%d directory: %v, want ErrLayout", version, err)
		}
	}
}

func TestOpenRefusesADirectoryInUse(t *testing.T) {
	dir := t.TempDir()
	openDir(t, dir, Config{})
	if s, err := OpenBadger(dir, Config{}); !errors.Is(err, ErrLocked) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("opening a directory another store holds: %v, want ErrLocked", err)
	}
}

// rewriteRaw opens a closed store's directory with plain Badger and
// replaces the value of key.
func rewriteRaw(t *testing.T, dir string, key []byte, edit func([]byte) []byte) {
	t.Helper()
	db, err := badger.Open(badgerOptions(dir, Config{}.withDefaults()))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		return txn.Set(key, edit(v))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCorruptValueIsNotReturned(t *testing.T) {
	fx := testFixtures(t, 14)
	// The blocks carry a deletion hash: 'b' starts with their 'm' value.
	const blockStart = metaRecordSize + 32
	tests := []struct {
		name   string
		family byte
		edit   func([]byte) []byte
	}{
		{"FlippedBit", familyBlock, func(v []byte) []byte { v[len(v)-1] ^= 1; return v }},
		{"FlippedHeaderBit", familyBlock, func(v []byte) []byte { v[blockStart+40] ^= 0x10; return v }},
		{"Truncated", familyBlock, func(v []byte) []byte { return v[:len(v)-1] }},
		{"Emptied", familyBlock, func(v []byte) []byte { return v[:0] }},
		{"OtherBlock", familyBlock, func(v []byte) []byte { b, _ := fx.data(4096); return append(v[:blockStart], b...) }},
		{"BareBlock", familyBlock, func(v []byte) []byte { return v[blockStart:] }}, // a layout-2 value
		{"ChecksumChanged", familyBlock, func(v []byte) []byte { v[metaRecordSize-1] ^= 1; return v }},
		{"SizeChanged", familyBlock, func(v []byte) []byte { v[5] ^= 1; return v }},
		{"MetadataTruncated", familyBlock, func(v []byte) []byte { return append(v[:metaRecordSize-1], v[metaRecordSize:]...) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := OpenBadger(dir, Config{})
			if err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			b, pre := fx.data(4096)
			id, err := s.Put(ctx, b, time.Hour, PutOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			rewriteRaw(t, dir, idKey(tc.family, id), tc.edit)
			s = openDir(t, dir, Config{})

			got, _, err := s.Get(ctx, id)
			if !errors.Is(err, ErrCorrupt) || !errors.Is(err, ErrNotFound) || got != nil {
				t.Fatalf("Get of a corrupted block: %d bytes, err %v; want ErrCorrupt and ErrNotFound", len(got), err)
			}
			if _, err := s.Stat(ctx, id); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Stat after the corrupt Get: %v, want ErrNotFound", err)
			}
			if err := s.Delete(ctx, id, pre); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Delete after the corrupt Get: %v, want ErrNotFound", err)
			}
			if got := keyFamilies(t, s); got[familyBlock]+got[familyMeta]+got[familyDistance] != 0 {
				t.Fatalf("keys left of the dropped block: %v", got)
			}
			if st := s.Stats(); st.Blocks != 0 || st.Bytes != 0 || st.Corrupt != 1 {
				t.Fatalf("stats after dropping the corrupt block: %+v", st)
			}
			// A correct copy can be stored again.
			if _, err := s.Put(ctx, b, time.Hour, PutOptions{}); err != nil {
				t.Fatal(err)
			}
			if got, _, err := s.Get(ctx, id); err != nil || string(got) != string(b) {
				t.Fatalf("Get after storing a correct copy: err %v", err)
			}
		})
	}
}

func TestDeleteReadsNoBlockBytes(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenBadger(dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	b, pre := testFixtures(t, 15).data(300)
	id, err := s.Put(ctx, b, time.Hour, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The bytes are gone; the metadata alone authorizes the Delete.
	db, err := badger.Open(badgerOptions(dir, Config{}.withDefaults()))
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(txn *badger.Txn) error { return txn.Delete(idKey(familyBlock, id)) })
	if err := errors.Join(err, db.Close()); err != nil {
		t.Fatal(err)
	}
	s = openDir(t, dir, Config{})
	if err := s.Delete(ctx, id, flipPreimage(pre)); !errors.Is(err, ErrForbidden) {
		t.Fatalf("Delete with a wrong preimage: %v, want ErrForbidden", err)
	}
	if err := s.Delete(ctx, id, pre); err != nil {
		t.Fatalf("Delete of a block whose bytes are missing: %v", err)
	}
	if st := s.Stats(); st.Blocks != 0 || st.Bytes != 0 {
		t.Fatalf("stats: %+v", st)
	}
	if _, err := s.Put(ctx, b, time.Hour, PutOptions{}); !errors.Is(err, ErrDeleted) {
		t.Fatalf("Put after Delete: %v, want ErrDeleted", err)
	}
}

func flipPreimage(p [32]byte) [32]byte {
	p[0] ^= 1
	return p
}

func FuzzPutBadger(f *testing.F) {
	fuzzSeeds(f)
	s, err := OpenBadger(f.TempDir(), Config{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	f.Fuzz(func(t *testing.T, b []byte, lifetime int64) {
		fuzzPut(t, s, b, time.Duration(lifetime))
	})
}

// A STORE from a peer is held once written and reaches the disk at the
// next sync; a Sync Put (the node's own pubkey) waits for the disk.
func TestUnsyncedPutsReachTheDiskOnTheInterval(t *testing.T) {
	fx := testFixtures(t, 12)
	ctx := t.Context()

	// An interval that never passes in this test: only a Sync Put syncs.
	s := openBadger(t, Config{SyncInterval: time.Hour})
	b, _ := fx.data(4096)
	id, err := s.Put(ctx, b, time.Hour, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(ctx, id); err != nil {
		t.Fatalf("an unsynced Put is not readable: %v", err)
	}
	if n := s.Stats().Syncs; n != 0 {
		t.Fatalf("%d syncs after a Put without Sync, want 0", n)
	}
	b2, _ := fx.data(4096)
	if _, err := s.Put(ctx, b2, time.Hour, PutOptions{Sync: true}); err != nil {
		t.Fatal(err)
	}
	if n := s.Stats().Syncs; n != 1 {
		t.Fatalf("%d syncs after a Sync Put returned, want 1", n)
	}

	// A short interval: the ticker syncs what waits, and only then.
	s2 := openBadger(t, Config{SyncInterval: 5 * time.Millisecond})
	b3, _ := fx.data(4096)
	if _, err := s2.Put(ctx, b3, time.Hour, PutOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the interval's sync never came", func() bool { return s2.Stats().Syncs >= 1 })
}
