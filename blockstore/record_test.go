package blockstore

import (
	"errors"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/internal/recordtest"
	"github.com/flowmail/flowmail/record"
)

// The record cases of the store suite (docs/PROTOCOL.md 15.4), on the
// records of testdata/vectors/record.json.

func (e *env) mustRefuse(b []byte, kind, reason error) {
	e.t.Helper()
	_, err := e.s.Put(e.ctx, b, time.Hour, PutOptions{})
	if !errors.Is(err, kind) || !errors.Is(err, reason) {
		e.t.Fatalf("Put: err %v, want %v wrapping %v", err, kind, reason)
	}
	// Each refusal is its own: it names no other reason.
	for _, other := range []error{record.ErrStale, record.ErrForked, record.ErrRevoked, record.ErrWrongKey, record.ErrTooLarge, record.ErrSignature} {
		if other != reason && errors.Is(err, other) {
			e.t.Fatalf("Put: err %v names %v besides %v", err, other, reason)
		}
	}
}

func testRecordIsKeptAtItsSlot(t *testing.T, open opener) {
	e := newEnv(t, open, Config{})
	a := recordtest.MustLoad(t)
	now := e.clock.Now()
	key := e.put(a.V1, time.Hour, PutOptions{})
	if key != a.Slot {
		t.Fatalf("Put returned %v, want the slot %v", key.Short(), a.Slot.Short())
	}
	m := e.mustHold(a.Slot, a.V1)
	wantMeta(t, m, Meta{ID: a.Slot, Type: block.TypeRecord, Size: len(a.V1), StoredAt: now, Expires: now.Add(time.Hour)})
	if m.BlockID != block.Sum(a.V1) {
		t.Fatalf("BlockID %v, want block.Sum %v", m.BlockID.Short(), block.Sum(a.V1).Short())
	}
	// A record is never found by its hash (section 4.1).
	e.mustMiss(block.Sum(a.V1))
	e.wantStats(1, int64(len(a.V1)))
}

func testNewerRecordReplacesTheHeldOne(t *testing.T, open opener) {
	e := newEnv(t, open, Config{})
	a := recordtest.MustLoad(t)
	e.put(a.V0, block.MaxLifetime, PutOptions{})
	e.clock.Advance(time.Minute)
	for _, next := range [][]byte{a.V1, a.V2, a.Revoked} {
		e.clock.Advance(time.Minute)
		now := e.clock.Now()
		e.put(next, 2*time.Hour, PutOptions{})
		m := e.mustHold(a.Slot, next)
		// The new version takes its own STORE's lifetime.
		wantMeta(t, m, Meta{ID: a.Slot, Type: block.TypeRecord, Size: len(next), StoredAt: now, Expires: now.Add(2 * time.Hour)})
		if m.BlockID != block.Sum(next) {
			t.Fatal("BlockID is not the new version's")
		}
		e.wantStats(1, int64(len(next)))
	}
	if st := e.s.Stats(); st.Evicted != 0 || st.Expired != 0 {
		t.Fatalf("replacing counted as eviction or expiry: %+v", st)
	}
	n := 0
	if err := e.s.Range(e.ctx, func(m Meta) error {
		n++
		if m.ID != a.Slot || m.BlockID != block.Sum(a.Revoked) {
			t.Errorf("Range: %+v", m)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("Range visited %d records, want 1", n)
	}
}

func testRecordRefusals(t *testing.T, open opener) {
	a := recordtest.MustLoad(t)
	tests := []struct {
		name       string
		held, next []byte
		kind, why  error
	}{
		{"ReplayedOlder", a.V2, a.V1, ErrRefused, record.ErrStale},
		{"ReplayedInception", a.V2, a.V0, ErrRefused, record.ErrStale},
		{"ForkedChain", a.V2, a.Fork, ErrRefused, record.ErrForked},
		{"ForkAfterRevocation", a.Revoked, a.Fork, ErrRefused, record.ErrRevoked},
		{"OlderAfterRevocation", a.Revoked, a.V1, ErrRefused, record.ErrRevoked},
		{"PrefixAfterRevocation", a.Revoked, a.V2, ErrRefused, record.ErrRevoked},
		{"AnythingAfterMove", a.Moved, a.Revoked, ErrRefused, record.ErrRevoked},
		{"EventAfterRevocation", a.Revoked, a.AfterRevocation, ErrInvalid, record.ErrRevoked},
		{"SignedByTheWrongKey", a.V1, a.WrongKey, ErrInvalid, record.ErrWrongKey},
		{"WrongKeyOnEmptySlot", nil, a.WrongKey, ErrInvalid, record.ErrWrongKey},
		{"Over4KiB", a.V2, a.TooLarge, ErrInvalid, record.ErrTooLarge},
		{"DelegationStale", a.D2, a.D1, ErrRefused, record.ErrStale},
		{"DelegationForked", a.D2, a.D2Fork, ErrRefused, record.ErrForked},
		{"DelegationAfterRevocation", a.DRevoked, a.D2, ErrRefused, record.ErrRevoked},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, open, Config{})
			var key block.ID
			if tc.held != nil {
				key = e.put(tc.held, time.Hour, PutOptions{})
			}
			e.mustRefuse(tc.next, tc.kind, tc.why)
			if tc.held != nil {
				e.mustHold(key, tc.held)
				e.wantStats(1, int64(len(tc.held)))
			} else {
				e.wantStats(0, 0)
			}
		})
	}
}

func testRecordReStoreOnlyMovesExpiry(t *testing.T, open opener) {
	e := newEnv(t, open, Config{})
	a := recordtest.MustLoad(t)
	t0 := e.clock.Now()
	e.put(a.V2, time.Hour, PutOptions{})
	e.clock.Advance(10 * time.Minute)
	t1 := e.clock.Now()
	e.put(a.V2, 3*time.Hour, PutOptions{})
	wantMeta(t, e.mustHold(a.Slot, a.V2), Meta{ID: a.Slot, Type: block.TypeRecord, Size: len(a.V2), StoredAt: t0, Expires: t1.Add(3 * time.Hour)})
	// Expiry is the store's, as for blocks: once it passes, the slot is
	// empty and takes any valid version.
	e.clock.Advance(3 * time.Hour)
	e.mustMiss(a.Slot)
	e.sweep()
	e.wantStats(0, 0)
	e.put(a.V1, time.Hour, PutOptions{})
	e.mustHold(a.Slot, a.V1)
}

func testNewerRecordFitsInTheRoomOfTheOld(t *testing.T, open opener) {
	a := recordtest.MustLoad(t)
	fx := testFixtures(t, 11)
	data, _ := fx.data(3000)
	// The quota holds the data block and V2, not V1 and V2 together.
	e := newEnv(t, open, Config{QuotaBytes: int64(len(data) + len(a.V2))})
	e.put(a.V1, time.Hour, PutOptions{})
	id := e.put(data, time.Hour, PutOptions{Source: Source{Node: "n"}})
	e.put(a.V2, time.Hour, PutOptions{Source: Source{Node: "n"}})
	e.mustHold(a.Slot, a.V2)
	e.mustHold(id, data)
	if st := e.wantStats(2, int64(len(data)+len(a.V2))); st.Evicted != 0 {
		t.Fatalf("%d blocks evicted for a record that replaces its own slot", st.Evicted)
	}
}

// badgerHoldingV2 opens a Badger store in a new directory and stores
// Alice's V2 in it.
func badgerHoldingV2(t *testing.T) (Store, string, *recordtest.Alice) {
	t.Helper()
	a := recordtest.MustLoad(t)
	dir := t.TempDir()
	s := openDir(t, dir, Config{})
	if _, err := s.Put(t.Context(), a.V2, time.Hour, PutOptions{}); err != nil {
		t.Fatal(err)
	}
	return s, dir, a
}

func TestBadgerRecordSurvivesReopen(t *testing.T) {
	s, dir, a := badgerHoldingV2(t)
	ctx := t.Context()
	want, err := s.Stat(ctx, a.Slot)
	if err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, dir, Config{})
	got, m, err := s.Get(ctx, a.Slot)
	if err != nil || string(got) != string(a.V2) {
		t.Fatalf("Get after reopen: %v", err)
	}
	if m != want || m.BlockID != block.Sum(a.V2) {
		t.Fatalf("meta after reopen %+v, want %+v", m, want)
	}
	// The held version still decides after a restart.
	if _, err := s.Put(ctx, a.V1, time.Hour, PutOptions{}); !errors.Is(err, record.ErrStale) {
		t.Fatalf("older version after reopen: %v, want ErrStale", err)
	}
}

func TestBadgerDamagedRecordGivesWayToANewVersion(t *testing.T) {
	s, dir, a := badgerHoldingV2(t)
	ctx := t.Context()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rewriteRaw(t, dir, idKey(familyBlock, a.Slot), func(v []byte) []byte { v[len(v)-1] ^= 1; return v })
	s = openDir(t, dir, Config{})
	// Damaged bytes neither refuse an older version nor get served.
	if _, err := s.Put(ctx, a.V1, time.Hour, PutOptions{}); err != nil {
		t.Fatalf("Put over a damaged record: %v", err)
	}
	got, _, err := s.Get(ctx, a.Slot)
	if err != nil || string(got) != string(a.V1) {
		t.Fatalf("Get: %v", err)
	}
	if st := s.Stats(); st.Corrupt != 1 || st.Blocks != 1 || st.Bytes != int64(len(a.V1)) {
		t.Fatalf("stats %+v: want the damaged version counted corrupt and V1 held", st)
	}
}
