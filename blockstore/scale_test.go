package blockstore

import (
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/blockstore/internal/memstat"
)

// TestStoreHoldsManyBlocks fills a Badger store from concurrent Puts, reads
// every block back, and checks the counters across a reopen. It holds
// 1,000 blocks by default and 100,000 of 4 KiB with FLOWMAIL_LONG=1, when
// it also logs the process's memory (the figure in the package's report
// comes from blockstore/internal/rssprobe, a process of its own).
func TestStoreHoldsManyBlocks(t *testing.T) {
	n := 1000
	if os.Getenv("FLOWMAIL_LONG") == "1" {
		n = 100_000
	}
	dir := t.TempDir()
	s, err := OpenBadger(dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	m := newBlockMaker(30)
	ids := make([]block.ID, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 16 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				id, err := s.Put(ctx, m.make(), time.Hour, PutOptions{})
				if err != nil {
					t.Error(err)
					return
				}
				ids[i] = id
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		s.Close()
		return
	}
	t.Logf("%d blocks stored in %v; %s", n, time.Since(start).Round(time.Millisecond), memstat.Report())
	want := Stats{Blocks: n, Bytes: int64(n) * benchBlockSize}
	if st := s.Stats(); st != want {
		t.Fatalf("stats %+v, want %+v", st, want)
	}
	s = reopen(t, s, dir, Config{})
	if st := s.Stats(); st != want {
		t.Fatalf("stats after reopen %+v, want %+v", st, want)
	}
	for _, id := range ids {
		if _, _, err := s.Get(ctx, id); err != nil {
			t.Fatalf("Get %v: %v", id.Short(), err)
		}
	}
	visited := 0
	if err := s.Range(ctx, func(Meta) error { visited++; return nil }); err != nil {
		t.Fatal(err)
	}
	if visited != n {
		t.Fatalf("Range visited %d blocks, want %d", visited, n)
	}
}
