package kademlia_test

import (
	"context"
	"fmt"
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
// (10,000: 35 KB heap per node, 594 MB max RSS, 30 s; 100,000: 8 min
// 18 s, 6.25 GB; 50,000 and more: see the README).
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
		fetchedAndDeleted(ctx, t, s)
	})
}

// fetchedAndDeleted stores index blocks (held by K) and shards from one
// client, gets each from another and deletes it as a recipient's fetch
// does, right after the Get (section 8): no copy may stay behind, though
// the getter's view of a block's holders comes from one FIND_BLOCK
// lookup and holders name nobody in answer to a DELETE.
func fetchedAndDeleted(ctx context.Context, t *testing.T, s *kadsim.Net) {
	cs := s.AddNodes(2, true)
	s.JoinThrough(ctx, cs, nil, 2)
	putter, getter := cs[0], cs[1]
	var left, requests []int
	for i := range 40 {
		blk, pre := kademlia.DataBlockWithDeletion(fmt.Sprintf("shard %d, fetched and deleted", i))
		del := getter.DHT.DeleteData
		if i%2 == 0 {
			blk, pre = kademlia.IndexBlock(s.Rand, s.RandomID(), 0)
			del = getter.DHT.Delete
		}
		id := block.Sum(blk)
		if _, err := putter.DHT.Put(ctx, blk, time.Hour); err != nil {
			t.Fatalf("put: %v", err)
		}
		if _, _, err := getter.DHT.Get(ctx, id); err != nil {
			t.Fatalf("get: %v", err)
		}
		before := getter.DHT.Stats().RequestsSent
		if _, err := del(ctx, id, pre); err != nil {
			t.Errorf("delete: %v", err)
		}
		requests = append(requests, int(getter.DHT.Stats().RequestsSent-before))
		left = append(left, s.HoldersOf(ctx, []block.ID{id})[0])
	}
	t.Logf("fetched and deleted 20 index blocks and 20 shards: requests per delete median %d, max %d; copies left max %d", kadsim.Percentile(requests, 50), kadsim.Percentile(requests, 100), kadsim.Percentile(left, 100))
	if n := kadsim.Percentile(left, 100); n != 0 {
		t.Errorf("a block fetched and deleted kept %d copies", n)
	}
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
