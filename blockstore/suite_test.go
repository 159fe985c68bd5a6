package blockstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/record"
)

// opener returns a new, empty store for cfg and closes it when t ends.
type opener func(t *testing.T, cfg Config) Store

// runStoreSuite is the conformance suite every Store implementation passes.
func runStoreSuite(t *testing.T, open opener) {
	tests := []struct {
		name string
		run  func(t *testing.T, open opener)
	}{
		{"PutThenGetReturnsTheBlock", testPutThenGetReturnsTheBlock},
		{"PutRejectsInvalidBlocks", testPutRejectsInvalidBlocks},
		{"PutComputesTheID", testPutComputesTheID},
		{"LifetimeIsCappedAtMax", testLifetimeIsCappedAtMax},
		{"StoringAgainKeepsLaterExpiry", testStoringAgainKeepsLaterExpiry},
		{"ExpiredBlockIsNotReturned", testExpiredBlockIsNotReturned},
		{"DeleteNeedsPreimage", testDeleteNeedsPreimage},
		{"DeletedBlockCannotBeStoredAgain", testDeletedBlockCannotBeStoredAgain},
		{"DeleteManyAnswersEach", testDeleteManyAnswersEach},
		{"PutManyStoresEach", testPutManyStoresEach},
		{"DropLeavesNoTombstone", testDropLeavesNoTombstone},
		{"ListByPrefix", testListByPrefix},
		{"ListRejectsBadArguments", testListRejectsBadArguments},
		{"QuotaEvictsFarthest", testQuotaEvictsFarthest},
		{"QuotaEvictsSeveralForALargeBlock", testQuotaEvictsSeveralForALargeBlock},
		{"QuotaNeverEvictsPinned", testQuotaNeverEvictsPinned},
		{"FlooderIsRefusedBeforeEvicting", testFlooderIsRefusedBeforeEvicting},
		{"ReplayDoesNotMoveExpiryByLittle", testReplayDoesNotMoveExpiryByLittle},
		{"RangeVisitsEveryLiveBlock", testRangeVisitsEveryLiveBlock},
		{"RecordIsKeptAtItsSlot", testRecordIsKeptAtItsSlot},
		{"NewerRecordReplacesTheHeldOne", testNewerRecordReplacesTheHeldOne},
		{"RecordRefusals", testRecordRefusals},
		{"RecordReStoreOnlyMovesExpiry", testRecordReStoreOnlyMovesExpiry},
		{"NewerRecordFitsInTheRoomOfTheOld", testNewerRecordFitsInTheRoomOfTheOld},
		{"ConcurrentUse", testConcurrentUse},
		{"ClosedStoreReturnsErrClosed", testClosedStoreReturnsErrClosed},
		{"CanceledContextIsHonoured", testCanceledContextIsHonoured},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, open) })
	}
}

// env is one store under test with its clock and block source.
type env struct {
	t     *testing.T
	ctx   context.Context
	s     Store
	clock *fakeClock
	fx    *fixtures
}

func newEnv(t *testing.T, open opener, cfg Config) *env {
	t.Helper()
	// The fake clock starts at the wall clock: Badger's TTL runs on it.
	clock := newFakeClock(time.Now().Truncate(time.Second))
	cfg.Clock = clock
	return &env{t: t, ctx: t.Context(), s: open(t, cfg), clock: clock, fx: testFixtures(t, uint64(len(t.Name())))}
}

func (e *env) put(b []byte, lifetime time.Duration, opt PutOptions) block.ID {
	e.t.Helper()
	id, err := e.s.Put(e.ctx, b, lifetime, opt)
	if err != nil {
		e.t.Fatalf("Put: %v", err)
	}
	return id
}

func (e *env) mustHold(id block.ID, want []byte) Meta {
	e.t.Helper()
	got, m, err := e.s.Get(e.ctx, id)
	if err != nil {
		e.t.Fatalf("Get %v: %v", id.Short(), err)
	}
	if string(got) != string(want) {
		e.t.Fatalf("Get %v: bytes differ from what was stored", id.Short())
	}
	return m
}

func (e *env) mustMiss(id block.ID) {
	e.t.Helper()
	if _, _, err := e.s.Get(e.ctx, id); !errors.Is(err, ErrNotFound) {
		e.t.Fatalf("Get %v: err %v, want ErrNotFound", id.Short(), err)
	}
	_, err := e.s.Stat(e.ctx, id)
	if !errors.Is(err, ErrNotFound) {
		e.t.Fatalf("Stat %v: err %v, want ErrNotFound", id.Short(), err)
	}
	if want := ErrNotFound.Error() + ": " + id.Short(); err.Error() != want {
		e.t.Fatalf("Stat %v: %q, want %q (it names the block)", id.Short(), err, want)
	}
}

// sweep makes a store settle expired blocks into its counters now.
func (e *env) sweep() {
	e.t.Helper()
	sw, ok := e.s.(interface{ Sweep(context.Context) error })
	if !ok {
		e.t.Fatalf("%T has no Sweep method", e.s)
	}
	if err := sw.Sweep(e.ctx); err != nil {
		e.t.Fatalf("Sweep: %v", err)
	}
}

func (e *env) wantStats(blocks int, bytes int64) Stats {
	e.t.Helper()
	st := e.s.Stats()
	if st.Blocks != blocks || st.Bytes != bytes {
		e.t.Fatalf("Stats: %d blocks, %d bytes; want %d, %d", st.Blocks, st.Bytes, blocks, bytes)
	}
	return st
}

func wantMeta(t *testing.T, got, want Meta) {
	t.Helper()
	if got.ID != want.ID || got.Type != want.Type || got.Size != want.Size || got.Pinned != want.Pinned ||
		!got.StoredAt.Equal(want.StoredAt) || !got.Expires.Equal(want.Expires) {
		t.Fatalf("meta\n got %+v\nwant %+v", got, want)
	}
}

func testPutThenGetReturnsTheBlock(t *testing.T, open opener) {
	e := newEnv(t, open, Config{})
	data, _ := e.fx.data(4096)
	index, _ := e.fx.index()
	pub := pubkeyBlock(t)
	now := e.clock.Now()
	var total int64
	for _, tc := range []struct {
		b      []byte
		typ    block.Type
		pinned bool
	}{{data, block.TypeData, false}, {index, block.TypeIndex, false}, {pub, block.TypePubkey, true}} {
		id := e.put(tc.b, time.Hour, PutOptions{Pinned: tc.pinned})
		want := Meta{ID: id, Type: tc.typ, Size: len(tc.b), StoredAt: now, Expires: now.Add(time.Hour), Pinned: tc.pinned}
		wantMeta(t, e.mustHold(id, tc.b), want)
		m, err := e.s.Stat(e.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		wantMeta(t, m, want)
		total += int64(len(tc.b))
	}
	e.wantStats(3, total)

	// The caller owns the returned slice; changing it changes nothing held.
	id := block.Sum(data)
	got, _, err := e.s.Get(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	got[len(got)-1] ^= 1
	e.mustHold(id, data)
}

func testPutRejectsInvalidBlocks(t *testing.T, open opener) {
	e := newEnv(t, open, Config{})
	data, _ := e.fx.data(100)
	index, _ := e.fx.index()
	pub := pubkeyBlock(t)
	edit := func(b []byte, f func([]byte) []byte) []byte { return f(append([]byte(nil), b...)) }
	oversized, _ := e.fx.data(block.MaxBlockSize + 1)
	tests := []struct {
		name     string
		b        []byte
		lifetime time.Duration
		cause    error // the block rule broken, nil for a bad lifetime
	}{
		{"Oversized", oversized, time.Hour, block.ErrTooLarge},
		{"Empty", nil, time.Hour, block.ErrTruncated},
		{"UnknownType", edit(data, func(b []byte) []byte { b[1] = 9; return b }), time.Hour, block.ErrType},
		{"RecordOfUnknownKind", edit(pub, func(b []byte) []byte { b[1] = byte(block.TypeRecord); return b }), time.Hour, record.ErrKind},
		{"UnknownVersion", edit(data, func(b []byte) []byte { b[0] = 2; return b }), time.Hour, block.ErrVersion},
		{"ReservedFlag", edit(data, func(b []byte) []byte { b[2] |= 0x80; return b }), time.Hour, block.ErrFlags},
		{"DataWithoutPayload", data[:block.HeaderSizeWithDeletion], time.Hour, block.ErrEmpty},
		{"IndexTooShort", index[:block.MinIndexSize-1], time.Hour, block.ErrTruncated},
		{"IndexWithoutDeletionHash", edit(index, func(b []byte) []byte { b[2] = 0; return b }), time.Hour, block.ErrFlags},
		{"PubkeyBadSignature", edit(pub, func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), time.Hour, block.ErrSignature},
		{"PubkeyTrailingByte", edit(pub, func(b []byte) []byte { return append(b, 0) }), time.Hour, block.ErrTrailing},
		{"PubkeyWithDeletionHash", edit(pub, func(b []byte) []byte { b[2] = block.FlagDeletion; return b }), time.Hour, block.ErrFlags},
		{"ZeroLifetime", data, 0, nil},
		{"NegativeLifetime", data, -time.Second, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.s.Put(e.ctx, tc.b, tc.lifetime, PutOptions{})
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err %v, want ErrInvalid", err)
			}
			if tc.cause != nil && !errors.Is(err, tc.cause) {
				t.Fatalf("err %v does not name the broken rule %v", err, tc.cause)
			}
			e.mustMiss(block.Sum(tc.b))
		})
	}
	e.wantStats(0, 0)
}

func testPutComputesTheID(t *testing.T, open opener) {
	e := newEnv(t, open, Config{})
	data, _ := e.fx.data(500)
	id := e.put(data, time.Hour, PutOptions{})
	if id != block.Sum(data) {
		t.Fatalf("Put returned %v, want block.Sum %v", id.Short(), block.Sum(data).Short())
	}
	// A block is found only under the hash of its bytes.
	other, _ := e.fx.data(500)
	e.mustMiss(block.Sum(other))
	e.mustMiss(e.fx.id())
	flipped := id
	flipped[31] ^= 1
	e.mustMiss(flipped)
}

func testLifetimeIsCappedAtMax(t *testing.T, open opener) {
	e := newEnv(t, open, Config{})
	data, _ := e.fx.data(200)
	id := e.put(data, 100*24*time.Hour, PutOptions{})
	m := e.mustHold(id, data)
	if want := e.clock.Now().Add(block.MaxLifetime); !m.Expires.Equal(want) {
		t.Fatalf("expires %v, want %v (capped at MaxLifetime)", m.Expires, want)
	}
}

func testStoringAgainKeepsLaterExpiry(t *testing.T, open opener) {
	e := newEnv(t, open, Config{})
	data, _ := e.fx.data(300)
	t0 := e.clock.Now()
	id := e.put(data, time.Hour, PutOptions{})
	e.clock.Advance(10 * time.Minute)
	e.put(data, 30*time.Minute, PutOptions{})
	m := e.mustHold(id, data)
	wantMeta(t, m, Meta{ID: id, Type: block.TypeData, Size: len(data), StoredAt: t0, Expires: t0.Add(time.Hour)})

	t1 := e.clock.Now()
	e.put(data, 2*time.Hour, PutOptions{Pinned: true})
	m = e.mustHold(id, data)
	wantMeta(t, m, Meta{ID: id, Type: block.TypeData, Size: len(data), StoredAt: t0, Expires: t1.Add(2 * time.Hour), Pinned: true})
	if r := m.Remaining(e.clock.Now()); r != 2*time.Hour {
		t.Fatalf("remaining %v, want 2h", r)
	}
	// An unpinned re-store does not unpin.
	e.put(data, time.Minute, PutOptions{})
	if m := e.mustHold(id, data); !m.Pinned {
		t.Fatal("re-store without Pinned unpinned the block")
	}

	e.clock.Advance(time.Hour)
	e.sweep()
	e.mustHold(id, data)
	e.wantStats(1, int64(len(data)))
}

func testExpiredBlockIsNotReturned(t *testing.T, open opener) {
	e := newEnv(t, open, Config{})
	short, _ := e.fx.index()
	long, _ := e.fx.index()
	sid := e.put(short, time.Minute, PutOptions{})
	lid := e.put(long, time.Hour, PutOptions{})

	e.clock.Advance(time.Minute - time.Nanosecond)
	e.mustHold(sid, short)
	e.clock.Advance(time.Nanosecond)
	e.mustMiss(sid)
	e.mustHold(lid, long)
	entries, _, err := e.s.List(e.ctx, sid, 0, time.Time{}, nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].ID != lid {
		t.Fatalf("List after expiry: %v, want only %v", entries, lid.Short())
	}
	e.sweep()
	if st := e.wantStats(1, int64(len(long))); st.Expired != 1 {
		t.Fatalf("Stats.Expired %d, want 1", st.Expired)
	}
	// An expired block can be stored again, as new.
	e.put(short, time.Minute, PutOptions{})
	m := e.mustHold(sid, short)
	if !m.StoredAt.Equal(e.clock.Now()) {
		t.Fatalf("stored at %v, want %v", m.StoredAt, e.clock.Now())
	}
	e.wantStats(2, int64(len(short)+len(long)))
}

func testDeleteNeedsPreimage(t *testing.T, open opener) {
	e := newEnv(t, open, Config{})
	data, pre := e.fx.data(700)
	pub := pubkeyBlock(t)
	id := e.put(data, time.Hour, PutOptions{})
	pid := e.put(pub, time.Hour, PutOptions{})

	tests := []struct {
		name     string
		id       block.ID
		preimage [32]byte
		want     error
	}{
		{"WrongPreimage", id, e.fx.preimage(), ErrForbidden},
		{"DeletionHashAsPreimage", id, block.DeletionHash(pre), ErrForbidden},
		{"BlockWithoutDeletionHash", pid, pre, ErrForbidden},
		{"UnknownBlock", e.fx.id(), pre, ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := e.s.Delete(e.ctx, tc.id, tc.preimage); !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			e.mustHold(id, data)
			e.mustHold(pid, pub)
		})
	}
	if err := e.s.Delete(e.ctx, id, pre); err != nil {
		t.Fatalf("Delete with the preimage: %v", err)
	}
	e.mustMiss(id)
	e.wantStats(1, int64(len(pub)))
	if err := e.s.Delete(e.ctx, id, pre); !errors.Is(err, ErrDeleted) {
		t.Fatalf("second Delete: err %v, want ErrDeleted", err)
	}
}

// testPutManyStoresEach: PutMany keeps each valid block under the ID
// Put would give it (more blocks than SumMany hashes at once, of
// several sizes), refuses the invalid ones alone, and a replay changes
// nothing.
func testPutManyStoresEach(t *testing.T, open opener) {
	e := newEnv(t, open, Config{})
	var bs [][]byte
	var size int64
	for i := range 11 {
		b, _ := e.fx.data(100 + 300*i)
		bs = append(bs, b)
		size += int64(len(b))
	}
	idx, _ := e.fx.index()
	bs = append(bs, idx, []byte{0xff, 0xff, 0xff})
	size += int64(len(idx))
	ids, errs := e.s.PutMany(e.ctx, bs, time.Hour, PutOptions{})
	if len(ids) != len(bs) || len(errs) != len(bs) {
		t.Fatalf("%d IDs and %d errors for %d blocks", len(ids), len(errs), len(bs))
	}
	for i, b := range bs[:len(bs)-1] {
		if errs[i] != nil || ids[i] != block.Sum(b) {
			t.Fatalf("block %d: ID %v, err %v; want %v", i, ids[i].Short(), errs[i], block.Sum(b).Short())
		}
		e.mustHold(ids[i], b)
	}
	if err := errs[len(bs)-1]; !errors.Is(err, ErrInvalid) {
		t.Fatalf("garbage: err %v, want ErrInvalid", err)
	}
	e.wantStats(len(bs)-1, size)
	if _, errs := e.s.PutMany(e.ctx, bs[:len(bs)-1], time.Hour, PutOptions{}); errors.Join(errs...) != nil {
		t.Fatalf("replayed PutMany: %v", errors.Join(errs...))
	}
	e.wantStats(len(bs)-1, size)
	for i, err := range errs2(e.s.PutMany(e.ctx, bs[:2], time.Millisecond, PutOptions{})) {
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("block %d with a lifetime under a second: err %v, want ErrInvalid", i, err)
		}
	}
}

// errs2 drops PutMany's IDs.
func errs2(_ []block.ID, errs []error) []error { return errs }

// testDeleteManyAnswersEach: DeleteMany drops the blocks their
// preimages open (a mail's index block with its own, its shards with
// theirs) and gives for each the error Delete would have.
func testDeleteManyAnswersEach(t *testing.T, open opener) {
	e := newEnv(t, open, Config{})
	data, pre := e.fx.data(700)
	h := block.Header{HasDeletion: true, DeletionHash: block.DeletionHash(pre)}
	second := block.Data{Header: h, Payload: []byte("a second shard of the same mail")}.Encode()
	other, _ := e.fx.data(800)
	id := e.put(data, time.Hour, PutOptions{})
	id2 := e.put(second, time.Hour, PutOptions{})
	oid := e.put(other, time.Hour, PutOptions{})
	index, indexPre := e.fx.index()
	iid := e.put(index, time.Hour, PutOptions{})
	ids := []block.ID{id, e.fx.id(), oid, id2, iid}
	pres := [][32]byte{pre, pre, pre, pre, indexPre}
	want := []error{nil, ErrNotFound, ErrForbidden, nil, nil}
	errs := e.s.DeleteMany(e.ctx, ids, pres)
	if len(errs) != len(ids) {
		t.Fatalf("%d errors for %d IDs", len(errs), len(ids))
	}
	for i, err := range errs {
		if want[i] == nil && err != nil || want[i] != nil && !errors.Is(err, want[i]) {
			t.Errorf("ID %d: err %v, want %v", i, err, want[i])
		}
	}
	e.mustMiss(id)
	e.mustMiss(id2)
	e.mustHold(oid, other)
	e.wantStats(1, int64(len(other)))
	e.mustMiss(iid)
	if err := e.s.DeleteMany(e.ctx, ids[:1], pres[:1])[0]; !errors.Is(err, ErrDeleted) {
		t.Fatalf("second DeleteMany: err %v, want ErrDeleted", err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	for i, err := range e.s.DeleteMany(ctx, []block.ID{oid, oid}, pres[:2]) {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled DeleteMany, ID %d: err %v, want context.Canceled", i, err)
		}
	}
	e.mustHold(oid, other)
}

// testDropLeavesNoTombstone: a holder that hands a block off drops it,
// and may be given it again later.
func testDropLeavesNoTombstone(t *testing.T, open opener) {
	e := newEnv(t, open, Config{})
	data, _ := e.fx.data(900)
	id := e.put(data, time.Hour, PutOptions{})
	if err := e.s.Drop(e.ctx, id); err != nil {
		t.Fatalf("Drop: %v", err)
	}
	e.mustMiss(id)
	e.wantStats(0, 0)
	if err := e.s.Drop(e.ctx, id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Drop of a block not held: err %v, want ErrNotFound", err)
	}
	e.put(data, time.Hour, PutOptions{})
	e.mustHold(id, data)
	e.wantStats(1, int64(len(data)))
}

func testDeletedBlockCannotBeStoredAgain(t *testing.T, open opener) {
	e := newEnv(t, open, Config{})
	data, pre := e.fx.data(900)
	id := e.put(data, time.Hour, PutOptions{})
	if err := e.s.Delete(e.ctx, id, pre); err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Duration{0, 59 * time.Minute} {
		e.clock.Advance(at)
		if _, err := e.s.Put(e.ctx, data, block.MaxLifetime, PutOptions{}); !errors.Is(err, ErrDeleted) {
			t.Fatalf("Put %v after Delete: err %v, want ErrDeleted", at, err)
		}
		e.mustMiss(id)
	}
	e.clock.Advance(time.Minute)
	e.put(data, time.Hour, PutOptions{})
	e.mustHold(id, data)
	e.wantStats(1, int64(len(data)))
}

// listAll pages through List with the given page size.
func listAll(t *testing.T, s Store, target block.ID, bits int, since time.Time, limit int) []ListEntry {
	t.Helper()
	var all []ListEntry
	var after *block.ID
	for {
		page, more, err := s.List(t.Context(), target, bits, since, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		if more && len(page) != limit {
			t.Fatalf("page of %d with more set, limit %d", len(page), limit)
		}
		all = append(all, page...)
		if !more {
			return all
		}
		after = &page[len(page)-1].ID
	}
}

func testListByPrefix(t *testing.T, open opener) {
	e := newEnv(t, open, Config{})
	type held struct {
		id       block.ID
		storedAt time.Time
	}
	var index []held
	var wg sync.WaitGroup
	var mu sync.Mutex
	for round := range 8 {
		// Concurrent puts share a commit in the Badger store.
		for range 25 {
			wg.Go(func() {
				b, _ := e.fx.index()
				id, err := e.s.Put(e.ctx, b, time.Hour, PutOptions{})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				index = append(index, held{id, e.clock.Now()})
				mu.Unlock()
			})
		}
		if round%2 == 0 {
			// Data blocks are never listed.
			wg.Go(func() {
				b, _ := e.fx.data(100)
				if _, err := e.s.Put(e.ctx, b, time.Hour, PutOptions{}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		e.clock.Advance(time.Second)
	}
	if t.Failed() {
		return
	}
	slices.SortFunc(index, func(a, b held) int { return compareIDs(a.id, b.id) })
	start := index[0].storedAt
	for q := range 60 {
		target := e.fx.id()
		if q%2 == 0 {
			target = index[q%len(index)].id
		}
		bits := q % 9
		switch q {
		case 1:
			bits = 256
			target = index[7].id
		case 3:
			bits = 256
		}
		since := start.Add(time.Duration(q%10) * time.Second)
		if q%5 == 0 {
			since = time.Time{}
		}
		var want []ListEntry
		for _, h := range index {
			if block.CommonPrefixLen(h.id, target) >= bits && !h.storedAt.Before(since) {
				want = append(want, ListEntry{ID: h.id, StoredAt: h.storedAt})
			}
		}
		got := listAll(t, e.s, target, bits, since, 1+q%7)
		if len(got) != len(want) {
			t.Fatalf("query %d (%d bits, since %v): %d entries, want %d", q, bits, since, len(got), len(want))
		}
		for i := range got {
			if got[i].ID != want[i].ID || !got[i].StoredAt.Equal(want[i].StoredAt) {
				t.Fatalf("query %d entry %d: %v at %v, want %v at %v", q, i, got[i].ID.Short(), got[i].StoredAt, want[i].ID.Short(), want[i].StoredAt)
			}
		}
	}
	// A cursor past the last ID ends the listing.
	last := block.ID{}
	for i := range last {
		last[i] = 0xff
	}
	if page, more, err := e.s.List(e.ctx, last, 0, time.Time{}, &last, 5); err != nil || len(page) != 0 || more {
		t.Fatalf("List after the last ID: %v, %v, %v", page, more, err)
	}
}

func testListRejectsBadArguments(t *testing.T, open opener) {
	e := newEnv(t, open, Config{})
	for _, tc := range []struct{ bits, limit int }{{-1, 10}, {257, 10}, {8, 0}, {8, -1}} {
		if _, _, err := e.s.List(e.ctx, block.ID{}, tc.bits, time.Time{}, nil, tc.limit); err == nil {
			t.Errorf("List(bits %d, limit %d) succeeded", tc.bits, tc.limit)
		}
	}
}

// quotaModel is what a quota store must hold: the blocks closest to self
// that fit.
type quotaModel struct {
	self    block.ID
	quota   int64
	held    map[block.ID]int64
	pinned  map[block.ID]bool
	evicted uint64
}

// put returns the expected outcome of a Put and applies it.
func (m *quotaModel) put(id block.ID, size int64, pinned bool) error {
	if _, ok := m.held[id]; ok {
		m.pinned[id] = m.pinned[id] || pinned
		return nil
	}
	var used int64
	var evictable []block.ID
	for h, s := range m.held {
		used += s
		if !m.pinned[h] {
			evictable = append(evictable, h)
		}
	}
	dist := func(id block.ID) block.ID { return block.Xor(id, m.self) }
	slices.SortFunc(evictable, func(a, b block.ID) int { return -compareIDs(dist(a), dist(b)) })
	var victims []block.ID
	for _, v := range evictable {
		if used+size <= m.quota || (!pinned && block.Less(dist(v), dist(id))) {
			break
		}
		victims = append(victims, v)
		used -= m.held[v]
	}
	if used+size > m.quota {
		return ErrFull
	}
	for _, v := range victims {
		delete(m.held, v)
		m.evicted++
	}
	m.held[id], m.pinned[id] = size, pinned
	return nil
}

func (m *quotaModel) check(e *env, all map[block.ID][]byte) {
	e.t.Helper()
	var bytes int64
	for id, b := range all {
		if _, ok := m.held[id]; ok {
			e.mustHold(id, b)
			bytes += int64(len(b))
		} else {
			e.mustMiss(id)
		}
	}
	st := e.wantStats(len(m.held), bytes)
	if st.Evicted != m.evicted || st.QuotaBytes != m.quota {
		e.t.Fatalf("Stats: evicted %d, quota %d; want %d, %d", st.Evicted, st.QuotaBytes, m.evicted, m.quota)
	}
	if st.Bytes > m.quota {
		e.t.Fatalf("holding %d bytes over a quota of %d", st.Bytes, m.quota)
	}
}

// runQuota puts blocks in order (pinned as told) and compares every
// outcome with the model.
func runQuota(e *env, m *quotaModel, blocks [][]byte, pinned func(i int) bool) {
	e.t.Helper()
	all := make(map[block.ID][]byte)
	for i, b := range blocks {
		id := block.Sum(b)
		all[id] = b
		want := m.put(id, int64(len(b)), pinned(i))
		_, err := e.s.Put(e.ctx, b, time.Hour, PutOptions{Pinned: pinned(i)})
		if !errors.Is(err, want) || (want == nil && err != nil) {
			e.t.Fatalf("Put %d (%v): err %v, want %v", i, id.Short(), err, want)
		}
	}
	m.check(e, all)
}

func newQuotaModel(self block.ID, quota int64) *quotaModel {
	return &quotaModel{self: self, quota: quota, held: map[block.ID]int64{}, pinned: map[block.ID]bool{}}
}

func testQuotaEvictsFarthest(t *testing.T, open opener) {
	fx := testFixtures(t, 7)
	self := fx.id()
	const size = 1000
	m := newQuotaModel(self, 8*size)
	e := newEnv(t, open, Config{Self: self, QuotaBytes: m.quota})
	var blocks [][]byte
	for range 40 {
		b, _ := fx.data(size)
		blocks = append(blocks, b)
	}
	// Storing a held block again needs no room.
	blocks = append(blocks, blocks[39], blocks[38])
	runQuota(e, m, blocks, func(int) bool { return false })
	if m.evicted == 0 || len(m.held) != 8 {
		t.Fatalf("the scenario should evict and fill the quota: %d evicted, %d held", m.evicted, len(m.held))
	}
}

func testQuotaEvictsSeveralForALargeBlock(t *testing.T, open opener) {
	fx := testFixtures(t, 8)
	var self block.ID // distance is the ID itself
	var small [][]byte
	var large []byte
	for len(small) < 4 || large == nil {
		if b, _ := fx.data(1000); block.Sum(b)[0] >= 0x80 && len(small) < 4 {
			small = append(small, b)
		}
		if b, _ := fx.data(2500); block.Sum(b)[0] < 0x80 {
			large = b
		}
	}
	m := newQuotaModel(self, 4000)
	e := newEnv(t, open, Config{Self: self, QuotaBytes: m.quota})
	runQuota(e, m, append(small, large), func(int) bool { return false })
	if m.evicted != 3 {
		t.Fatalf("scenario should evict three small blocks, model evicted %d", m.evicted)
	}
}

func testQuotaNeverEvictsPinned(t *testing.T, open opener) {
	fx := testFixtures(t, 9)
	self := fx.id()
	const size = 1000
	var blocks [][]byte
	for range 20 {
		b, _ := fx.data(size)
		blocks = append(blocks, b)
	}
	// Pin the two farthest, storing them first.
	dist := func(b []byte) block.ID { return block.Xor(block.Sum(b), self) }
	slices.SortFunc(blocks, func(a, b []byte) int { return -compareIDs(dist(a), dist(b)) })
	m := newQuotaModel(self, 4*size)
	e := newEnv(t, open, Config{Self: self, QuotaBytes: m.quota})
	runQuota(e, m, blocks, func(i int) bool { return i < 2 })
	for _, b := range blocks[:2] {
		if meta := e.mustHold(block.Sum(b), b); !meta.Pinned {
			t.Fatal("pinned block lost its pin")
		}
	}

	// A store full of pinned blocks refuses even the closest block.
	m = newQuotaModel(self, 2*size)
	e = newEnv(t, open, Config{Self: self, QuotaBytes: m.quota})
	runQuota(e, m, blocks[:2], func(int) bool { return true })
	if _, err := e.s.Put(e.ctx, blocks[19], time.Hour, PutOptions{}); !errors.Is(err, ErrFull) {
		t.Fatalf("Put into a store full of pinned blocks: err %v, want ErrFull", err)
	}
}

func testRangeVisitsEveryLiveBlock(t *testing.T, open opener) {
	e := newEnv(t, open, Config{})
	want := map[block.ID]int{}
	for i := range 12 {
		b, pre := e.fx.data(100 + i)
		lifetime := time.Hour
		if i == 3 {
			lifetime = time.Minute
		}
		id := e.put(b, lifetime, PutOptions{Pinned: i == 5})
		switch i {
		case 3:
		case 4:
			if err := e.s.Delete(e.ctx, id, pre); err != nil {
				t.Fatal(err)
			}
		default:
			want[id] = len(b)
		}
	}
	e.clock.Advance(time.Minute)
	got := map[block.ID]int{}
	err := e.s.Range(e.ctx, func(m Meta) error {
		// fn may use the store.
		if _, err := e.s.Stat(e.ctx, m.ID); err != nil {
			return err
		}
		if _, dup := got[m.ID]; dup {
			return fmt.Errorf("%v visited twice", m.ID.Short())
		}
		got[m.ID] = m.Size
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("Range visited %d blocks, want %d", len(got), len(want))
	}
	for id, size := range want {
		if got[id] != size {
			t.Fatalf("Range: %v size %d, want %d", id.Short(), got[id], size)
		}
	}
	stop := errors.New("stop")
	visits := 0
	if err := e.s.Range(e.ctx, func(Meta) error { visits++; return stop }); !errors.Is(err, stop) || visits != 1 {
		t.Fatalf("Range with a failing fn: err %v after %d visits, want stop after 1", err, visits)
	}
}

func testConcurrentUse(t *testing.T, open opener) {
	e := newEnv(t, open, Config{Self: block.ID{1}, QuotaBytes: 60 * 600})
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			for i := range 15 {
				b, pre := e.fx.data(600)
				id, err := e.s.Put(e.ctx, b, time.Hour, PutOptions{})
				if errors.Is(err, ErrFull) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				if got, _, err := e.s.Get(e.ctx, id); err == nil && string(got) != string(b) {
					t.Error("Get returned other bytes")
				} else if err != nil && !errors.Is(err, ErrNotFound) { // evicted meanwhile
					t.Error(err)
				}
				if (w+i)%3 == 0 {
					if err := e.s.Delete(e.ctx, id, pre); err != nil && !errors.Is(err, ErrNotFound) {
						t.Error(err)
					}
				}
				if _, _, err := e.s.List(e.ctx, id, 2, time.Time{}, nil, 5); err != nil {
					t.Error(err)
				}
				_ = e.s.Stats()
			}
		})
	}
	wg.Wait()
	var blocks int
	var bytes int64
	if err := e.s.Range(e.ctx, func(m Meta) error { blocks++; bytes += int64(m.Size); return nil }); err != nil {
		t.Fatal(err)
	}
	st := e.wantStats(blocks, bytes)
	if st.Bytes > st.QuotaBytes {
		t.Fatalf("holding %d bytes over a quota of %d", st.Bytes, st.QuotaBytes)
	}
}

func testClosedStoreReturnsErrClosed(t *testing.T, open opener) {
	e := newEnv(t, open, Config{})
	b, pre := e.fx.data(100)
	id := e.put(b, time.Hour, PutOptions{})
	for range 2 {
		if err := e.s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	checks := map[string]error{}
	_, checks["Put"] = e.s.Put(e.ctx, b, time.Hour, PutOptions{})
	_, _, checks["Get"] = e.s.Get(e.ctx, id)
	_, checks["Stat"] = e.s.Stat(e.ctx, id)
	checks["Delete"] = e.s.Delete(e.ctx, id, pre)
	_, _, checks["List"] = e.s.List(e.ctx, id, 0, time.Time{}, nil, 1)
	checks["Range"] = e.s.Range(e.ctx, func(Meta) error { return nil })
	for name, err := range checks {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: err %v, want ErrClosed", name, err)
		}
	}
}

func testCanceledContextIsHonoured(t *testing.T, open opener) {
	e := newEnv(t, open, Config{})
	b, _ := e.fx.data(100)
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	if _, err := e.s.Put(ctx, b, time.Hour, PutOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with a canceled context: err %v", err)
	}
	e.mustMiss(block.Sum(b))
}

func testFlooderIsRefusedBeforeEvicting(t *testing.T, open opener) {
	fx := testFixtures(t, 8)
	self := fx.id()
	const size, room = 1000, 100
	// Budgets: a node a tenth of the quota, a group a fifth, per hour.
	e := newEnv(t, open, Config{Self: self, QuotaBytes: room * size, NodeBudget: 10 * size, GroupBudget: 20 * size})
	honest := Source{Node: "honest", Group: "198.51.100.0/24"}
	var kept [][]byte
	for range 30 {
		b, _ := fx.data(size)
		if _, err := e.s.Put(e.ctx, b, time.Hour, PutOptions{Source: honest}); err != nil {
			t.Fatalf("honest Put into free room: %v", err)
		}
		kept = append(kept, b)
	}
	// One group floods from ever new node IDs: the free room takes its
	// blocks, then every block that needs an eviction is refused.
	refused := 0
	for i := range 300 {
		b, _ := fx.data(size)
		junk := Source{Node: fmt.Sprintf("junk-%d", i), Group: "203.0.113.0/24"}
		_, err := e.s.Put(e.ctx, b, time.Hour, PutOptions{Source: junk})
		switch {
		case errors.Is(err, ErrOverBudget):
			refused++
		case err != nil:
			t.Fatalf("junk Put %d: %v", i, err)
		}
	}
	if refused != 300-(room-30) {
		t.Fatalf("%d junk blocks refused, want all %d that needed room", refused, 300-(room-30))
	}
	for _, b := range kept {
		e.mustHold(block.Sum(b), b)
	}
	st := e.wantStats(room, room*size)
	if st.Evicted != 0 || st.OverBudget != uint64(refused) {
		t.Fatalf("stats after the flood: %+v", st)
	}

	// An honest source still makes room (the farthest blocks go).
	b, _ := fx.data(size)
	if _, err := e.s.Put(e.ctx, b, time.Hour, PutOptions{Source: Source{Node: "other", Group: "192.0.2.0/24"}}); err != nil && !errors.Is(err, ErrFull) {
		t.Fatalf("Put from another source into a full store: %v", err)
	}
	// The flooder's charges decay: after ten half-lives it may evict again.
	e.clock.Advance(10 * time.Hour)
	evictedBefore := e.s.Stats().Evicted
	for range 20 {
		b, _ := fx.data(size)
		_, err := e.s.Put(e.ctx, b, 30*time.Hour, PutOptions{Source: Source{Node: "junk-late", Group: "203.0.113.0/24"}})
		if errors.Is(err, ErrOverBudget) {
			t.Fatalf("the group is still over budget after ten half-lives")
		}
	}
	if e.s.Stats().Evicted == evictedBefore && e.s.Stats().Expired == 0 {
		t.Fatal("no room was made for the late blocks")
	}
}

func testReplayDoesNotMoveExpiryByLittle(t *testing.T, open opener) {
	e := newEnv(t, open, Config{})
	b, _ := e.fx.data(300)
	id := e.put(b, 3*time.Hour, PutOptions{})
	first := e.clock.Now().Add(3 * time.Hour)
	// Less than MinExtension later: the expiry stays.
	e.clock.Advance(30 * time.Minute)
	e.put(b, 3*time.Hour, PutOptions{})
	if m, err := e.s.Stat(e.ctx, id); err != nil || !m.Expires.Equal(first) {
		t.Fatalf("after a replay half an hour later: %+v, %v; want expiry %v", m, err, first)
	}
	// MinExtension later it moves.
	e.clock.Advance(MinExtension)
	e.put(b, 3*time.Hour, PutOptions{})
	if m, err := e.s.Stat(e.ctx, id); err != nil || !m.Expires.Equal(e.clock.Now().Add(3*time.Hour)) {
		t.Fatalf("after a re-store an hour and a half later: %+v, %v", m, err)
	}
	// With less than MinExtension left, a smaller move is taken: the time
	// left (10 minutes) is the step.
	e.clock.Advance(3*time.Hour - 10*time.Minute)
	e.put(b, 15*time.Minute, PutOptions{})
	if m, err := e.s.Stat(e.ctx, id); err != nil || !m.Expires.Equal(e.clock.Now().Add(10*time.Minute)) {
		t.Fatalf("a 5-minute move with 10 minutes left was taken: %+v, %v", m, err)
	}
	e.put(b, 20*time.Minute, PutOptions{})
	if m, err := e.s.Stat(e.ctx, id); err != nil || !m.Expires.Equal(e.clock.Now().Add(20*time.Minute)) {
		t.Fatalf("a 10-minute move with 10 minutes left was not taken: %+v, %v", m, err)
	}
}
