package kademlia_test

import (
	"math"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/kademlia"
	"github.com/flowmail/flowmail/kademlia/kadsim"
	"github.com/flowmail/flowmail/transport"
)

// TestSimulation builds a network, checks lookups against brute force,
// stores blocks from clients, fails a quarter of the nodes, runs a
// republish round and checks the blocks are still there. 2,000 nodes
// (600 under -race); FLOWMAIL_LONG=1: 10,000; FLOWMAIL_SIMNODES=N: N
// (10,000: 32 KB heap per node, 587 MB max RSS, 32 s; 50,000 and
// 100,000: see the README).
func TestSimulation(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation skipped in -short mode")
	}
	seed := kadsim.Seed(t)
	short := 2000
	if raceEnabled {
		short = 600 // the same checks, within the suite's time under -race on a busy machine
	}
	n := kadsim.Size(t, short, 10000)
	// Joins in waves of n/40 (at least 50) keep the join within minutes
	// of virtual time, inside the contacts' freshness, at any size.
	wave := max(50, n/40)
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		s := kadsim.New(t, seed, kadsim.MemConfig())
		// Republishing every 6 minutes keeps the round within the
		// contacts' freshness (see kadsim.Net.RepublishRound).
		s.RepublishInterval = 6 * time.Minute
		start := time.Now()
		nodes := s.AddNodes(n, false)
		s.Join(ctx, nodes, wave)
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		t.Logf("%d nodes joined in %v virtual; mean table size %.1f; %d requests; heap %d MB, %.1f KB per node", n, time.Since(start), kadsim.MeanTableSize(s.Live()), s.TotalRequests(), ms.HeapInuse>>20, float64(ms.HeapInuse)/float64(n)/1024)

		f := s.RunLookups(ctx, t, s.Live(), 500)
		t.Logf("N=%d: %v", n, f)
		if f.Exact*100 < 99*f.Lookups {
			t.Errorf("only %d of %d lookups found the true %d closest", f.Exact, f.Lookups, kademlia.K)
		}

		ids := s.StoreFromClients(ctx, t, 25, 20, nil)
		// The blocks are data blocks: held at the R closest, not K.
		r := block.ShardReplicas
		s.FailFraction(0.25)
		before := s.ReplicasAtClosest(ctx, ids, r)
		// A block whose R holders all failed is gone (probability
		// 0.25^R, 1.6% at R = 3: the erasure code, not the DHT, covers
		// that; docs/PROTOCOL.md 9.7). Every other block must come back.
		survivors := 0
		for _, h := range s.HoldersOf(ctx, ids) {
			if h > 0 {
				survivors++
			}
		}
		t.Logf("%d of %d blocks kept a live copy when 25%% of the nodes failed (expected loss %.1f%%)", survivors, len(ids), 100*math.Pow(0.25, float64(r)))
		// NODES answers of K + K/4 keep the live K closest named while a
		// quarter of the contacts peers count live are dead (section 8);
		// with answers of K, 96% of these lookups were exact.
		failedLookups := s.RunLookups(ctx, t, s.Live(), 200)
		t.Logf("lookups right after the failures: %v", failedLookups)
		if failedLookups.Exact*100 < 98*failedLookups.Lookups {
			t.Errorf("right after the failures only %d of %d lookups found the true %d closest live nodes", failedLookups.Exact, failedLookups.Lookups, kademlia.K)
		}
		s.RepublishRound(ctx, t)
		after := s.ReplicasAtClosest(ctx, ids, r)
		holders := s.HoldersOf(ctx, ids)
		full, exact := 0, 0
		for i, c := range after {
			if c == r {
				full++
				if holders[i] == r {
					exact++
				}
			}
		}
		t.Logf("copies at the %d closest live nodes: median %d, min %d before republishing; median %d, p1 %d, min %d after; %d of %d blocks at all %d, %d of them at no other node; holders per block median %d, max %d; bytes stored per node %.0f",
			r, kadsim.Percentile(before, 50), kadsim.Percentile(before, 0), kadsim.Percentile(after, 50), kadsim.Percentile(after, 1), kadsim.Percentile(after, 0), full, len(ids), r, exact,
			kadsim.Percentile(holders, 50), kadsim.Percentile(holders, 100), s.BytesPerNode())
		t.Logf("lookups after the republish round: %v", s.RunLookups(ctx, t, s.Live(), 200))
		// Right after a quarter of the nodes fail, lookups miss some of
		// the closest live nodes (peers still name the dead ones), so one
		// round restores most blocks fully, not all.
		if full*10 < 8*survivors || kadsim.Percentile(after, 50) != r {
			t.Errorf("after republishing only %d of %d surviving blocks are held by all of their %d closest live nodes (median %d)", full, survivors, r, kadsim.Percentile(after, 50))
		}
		retrievable := s.CountRetrievable(ctx, s.Live(), ids)
		t.Logf("%d of %d blocks retrievable after 25%% of the nodes failed and a republish round", retrievable, len(ids))
		if retrievable*100 < 99*survivors {
			t.Errorf("only %d of the %d blocks that kept a live copy are retrievable", retrievable, survivors)
		}
	})
}

func benchNet(b *testing.B, n int) *kadsim.Net {
	s := kadsim.New(b, kadsim.DefaultSeed, transport.MemConfig{})
	nodes := s.AddNodes(n, false)
	s.Join(b.Context(), nodes, 50)
	return s
}

// BenchmarkSimLookup measures lookups per second through the simulator:
// the CPU cost of the Kademlia logic plus the in-memory transport.
// BenchmarkSimPing, one request and answer, is its baseline.
func BenchmarkSimLookup(b *testing.B) {
	s := benchNet(b, 500)
	live := s.Live()
	msgs := 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		_, st, err := live[s.Rand.IntN(len(live))].DHT.Lookup(b.Context(), s.RandomID())
		if err != nil {
			b.Fatal(err)
		}
		msgs += st.Messages
	}
	b.ReportMetric(float64(msgs)/float64(b.N), "msgs/lookup")
}

func BenchmarkSimPing(b *testing.B) {
	s := benchNet(b, 2)
	from, to := s.Nodes[0], s.Nodes[1].Contact()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := from.DHT.Ping(b.Context(), to); err != nil {
			b.Fatal(err)
		}
	}
}
