package blockstore

import (
	"errors"
	"log/slog"
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

func TestBadgerTTLHidesExpiredBlock(t *testing.T) {
	// The store's clock stands still; only Badger's TTL, on the wall
	// clock, can hide the block.
	clock := newFakeClock(time.Now())
	s := openBadger(t, Config{Clock: clock})
	fx := newFixtures(11)
	short, _ := fx.index()
	long, _ := fx.index()
	ctx := t.Context()
	sid, err := s.Put(ctx, short, time.Second, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lid, err := s.Put(ctx, long, time.Hour, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 4*time.Second, "Badger's TTL did not hide the block", func() bool {
		_, _, err := s.Get(ctx, sid)
		return errors.Is(err, ErrNotFound)
	})
	if entries, _, err := s.List(ctx, sid, 0, time.Time{}, nil, 10); err != nil || len(entries) != 1 || entries[0].ID != lid {
		t.Fatalf("List after the TTL: %v, %v; want only %v", entries, err, lid.Short())
	}
	if _, _, err := s.Get(ctx, lid); err != nil {
		t.Fatal(err)
	}

	// The sweep, on the store's clock, settles the counters and removes
	// every key of the block.
	clock.Advance(time.Second)
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

func TestBadgerSweepsInTheBackground(t *testing.T) {
	clock := newFakeClock(time.Now())
	s := openBadger(t, Config{Clock: clock, SweepInterval: 10 * time.Millisecond, GCInterval: 10 * time.Millisecond})
	b, _ := newFixtures(12).data(5000)
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
	fx := newFixtures(13)
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
	if s, err := OpenBadger(dir, Config{Self: block.ID{2}}); err == nil {
		s.Close()
		t.Fatal("a store created for one node opened for another")
	}
	s, err = OpenBadger(dir, Config{Self: block.ID{1}})
	if err != nil {
		t.Fatalf("reopening for the same node: %v", err)
	}
	s.Close()
}

// rewriteRaw opens a closed store's directory with plain Badger and
// replaces the value of key, keeping its TTL.
func rewriteRaw(t *testing.T, dir string, key []byte, edit func([]byte) []byte) {
	t.Helper()
	db, err := badger.Open(badgerOptions(dir, slog.New(slog.DiscardHandler)))
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
		return txn.SetEntry(&badger.Entry{Key: key, Value: edit(v), ExpiresAt: item.ExpiresAt()})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCorruptValueIsNotReturned(t *testing.T) {
	fx := newFixtures(14)
	tests := []struct {
		name string
		edit func([]byte) []byte
	}{
		{"FlippedBit", func(v []byte) []byte { v[len(v)-1] ^= 1; return v }},
		{"Truncated", func(v []byte) []byte { return v[:len(v)-1] }},
		{"Emptied", func(v []byte) []byte { return v[:0] }},
		{"OtherBlock", func([]byte) []byte { b, _ := fx.data(4096); return record{}.blockValue(b) }},
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
			rewriteRaw(t, dir, idKey(familyBlock, id), tc.edit)
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

func TestDeleteDropsCorruptBlock(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenBadger(dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	b, pre := newFixtures(15).data(300)
	id, err := s.Put(ctx, b, time.Hour, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rewriteRaw(t, dir, idKey(familyBlock, id), func(v []byte) []byte { v[blockPrefixSize+10] ^= 1; return v })
	s = openDir(t, dir, Config{})
	if err := s.Delete(ctx, id, pre); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete of a corrupted block: %v, want ErrNotFound", err)
	}
	if st := s.Stats(); st.Blocks != 0 || st.Corrupt != 1 {
		t.Fatalf("stats: %+v", st)
	}
	// No tombstone: a correct copy is welcome.
	if _, err := s.Put(ctx, b, time.Hour, PutOptions{}); err != nil {
		t.Fatal(err)
	}
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
