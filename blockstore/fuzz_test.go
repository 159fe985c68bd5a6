package blockstore

import (
	"errors"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/internal/recordtest"
	"github.com/flowmail/flowmail/record"
)

// fuzzPut feeds arbitrary bytes to Put: they are refused with ErrInvalid
// (or, for a record, ErrRefused by the version held) or stored, and then
// Get at the key Put returned gives exactly them and the counters agree.
func fuzzPut(t *testing.T, s Store, b []byte, lifetime time.Duration) {
	before := s.Stats()
	rec, _ := record.Decode(b) // nil unless b is laid out as a record
	_, statErr := s.Stat(t.Context(), block.Sum(b))
	heldBefore := statErr == nil
	id, err := s.Put(t.Context(), b, lifetime, PutOptions{})
	if err != nil {
		if !errors.Is(err, ErrInvalid) && (rec == nil || !errors.Is(err, ErrRefused)) {
			t.Fatalf("Put refused with %v, want ErrInvalid", err)
		}
		if _, err := s.Stat(t.Context(), block.Sum(b)); !heldBefore && !errors.Is(err, ErrNotFound) {
			t.Fatalf("refused block is held: Stat err %v", err)
		}
		if after := s.Stats(); after != before {
			t.Fatalf("refused Put changed stats: %+v -> %+v", before, after)
		}
		return
	}
	want := block.Sum(b)
	if rec != nil {
		want = rec.Slot()
	}
	if id != want {
		t.Fatalf("Put returned key %v, want %v", id.Short(), want.Short())
	}
	got, m, err := s.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get after Put: %v", err)
	}
	if string(got) != string(b) || m.Size != len(b) || m.ID != id || m.BlockID != block.Sum(b) || m.Type != block.Type(b[1]) {
		t.Fatalf("Get returned %d bytes, meta %+v; stored %d bytes", len(got), m, len(b))
	}
	if rec != nil {
		return // it may have replaced another version of its slot
	}
	after := s.Stats()
	if after.Blocks < before.Blocks || after.Bytes-before.Bytes != int64(len(b))*int64(after.Blocks-before.Blocks) {
		t.Fatalf("stats after storing %d bytes: %+v -> %+v", len(b), before, after)
	}
}

func fuzzSeeds(f *testing.F) {
	fx := newFixtures(1)
	data, _ := fx.data(64)
	index, _ := fx.index()
	a := recordtest.MustLoad(f)
	for _, seed := range [][]byte{
		data, index, pubkeyBlock(f),
		{1, 2, 0, 'x'}, {1, 2, 1}, {1, 4, 0, 0}, {2, 2, 0, 0}, {}, {1},
		a.V1, a.V2, a.Fork, a.Revoked, a.WrongKey, a.D1, a.D2,
	} {
		f.Add(seed, int64(time.Hour))
	}
	f.Add(data, int64(0))
	f.Add(data, int64(block.MaxLifetime)*4)
}

func FuzzPut(f *testing.F) {
	fuzzSeeds(f)
	s := NewMemory(Config{})
	f.Cleanup(func() { s.Close() })
	f.Fuzz(func(t *testing.T, b []byte, lifetime int64) {
		fuzzPut(t, s, b, time.Duration(lifetime))
	})
}
