package testnet

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/blockstore"
	"github.com/flowmail/flowmail/internal/clock"
	"github.com/flowmail/flowmail/internal/testseed"
	"github.com/flowmail/flowmail/node"
)

// exactLookups gives a node of a churn test timeouts a loaded machine
// never reaches with a live peer, lookups that wait for every answer
// (no stall heuristic: a republish that passed over a slow live peer
// would leave it without the block) and upkeep loops held off (the test
// runs the republish rounds itself; see TestThirtyNodesStoreFetchAndSurviveChurn).
func exactLookups(c *node.Config) {
	c.DialTimeout, c.HandshakeTimeout, c.RequestTimeout = deadDial, 2*time.Minute, 2*time.Minute
	c.StallTimeout = -1
	c.UpkeepInterval = 24 * time.Hour
}

// joinFresh starts a full node with a new identity that joins net, as a
// newcomer does. It stops with the test.
func joinFresh(t *testing.T, ctx context.Context, net *Net, clk clock.Clock, i int) *node.Node {
	t.Helper()
	c := node.Config{
		DataDir:        filepath.Join(t.TempDir(), "joiner"),
		Network:        net.Network(),
		Listen:         "127.0.0.1:0",
		Bootstrap:      net.Contacts(),
		Logger:         testLogger(t).With("joiner", i),
		NoIPLimits:     true,
		Clock:          clk,
		Reachability:   node.ReachPublic,
		StoreFootprint: blockstore.FootprintShared,
	}
	exactLookups(&c)
	nd, err := node.Start(ctx, c)
	if err != nil {
		t.Fatalf("joiner %d: %v", i, err)
	}
	t.Cleanup(func() { nd.Close() })
	return nd
}

// holdersAt reports, for each block, how many of its R closest nodes of
// live hold it and how many of live hold it in all.
func holdersAt(ctx context.Context, live []*node.Node, ids []block.ID) (atClosest, all []int) {
	atClosest, all = make([]int, len(ids)), make([]int, len(ids))
	live = append([]*node.Node(nil), live...)
	for i, id := range ids {
		sort.Slice(live, func(a, b int) bool { return block.Less(block.Xor(live[a].ID(), id), block.Xor(live[b].ID(), id)) })
		for j, nd := range live {
			if _, err := nd.Store().Stat(ctx, id); err == nil {
				all[i]++
				if j < block.ShardReplicas {
					atClosest[i]++
				}
			}
		}
	}
	return atClosest, all
}

// TestShardsStayAtTheirClosestWhileNodesLeaveAndJoin: over real QUIC, a
// data block is held by exactly the R (block.ShardReplicas) nodes closest
// to it; then over republish rounds (the DHT clock moved a data block's
// republish interval each time) in which nodes leave and fresh ones join,
// every block is back at exactly its R closest live nodes after each
// round (holders that fell out of the R hand it off) and stays fetchable.
func TestShardsStayAtTheirClosestWhileNodesLeaveAndJoin(t *testing.T) {
	ctx := hangGuard(t)
	seed := testseed.Seed(t)
	const nodes, rounds, leave, join = 14, 3, 2, 2
	clk := &clock.Offset{}
	net, err := Start(ctx, Config{Nodes: nodes, Dir: t.TempDir(), SingleSeed: true, Clock: clk, Logger: testLogger(t),
		Tune: func(_ int, c *node.Config) { exactLookups(c) }, TuneClient: exactLookups})
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()

	writer, err := net.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	blocks := randomDataBlocks(t, 40)
	ids := make([]block.ID, len(blocks))
	errs := make([]error, len(blocks))
	var wg sync.WaitGroup
	for i, b := range blocks {
		ids[i] = block.Sum(b)
		wg.Go(func() { errs[i] = writer.Put(ctx, b, 10*24*time.Hour) })
	}
	wg.Wait()
	writer.Close()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("storing block %d: %v", i, err)
		}
	}
	check := func(when string, live []*node.Node) {
		t.Helper()
		at, all := holdersAt(ctx, live, ids)
		for i := range ids {
			if at[i] != block.ShardReplicas || all[i] != block.ShardReplicas {
				t.Fatalf("%s: block %v held by %d nodes, %d of them among its %d closest live; want exactly those %d",
					when, ids[i].Short(), all[i], at[i], block.ShardReplicas, block.ShardReplicas)
			}
		}
	}
	check("after the puts", net.Running())

	var joined []*node.Node
	live := func() []*node.Node { return append(net.Running(), joined...) }
	r := rand.New(rand.NewPCG(seed, seed))
	order := r.Perm(nodes)
	stopped := map[block.ID]bool{}
	for round := range rounds {
		for _, i := range order[round*leave : (round+1)*leave] {
			id, addr := net.Node(i).Identity(), net.Node(i).Addr()
			stopped[id.ID()] = true
			if err := net.Stop(i); err != nil {
				t.Fatal(err)
			}
			refuseAt(t, ctx, addr, id)
		}
		for j := range join {
			joined = append(joined, joinFresh(t, ctx, net, clk, round*join+j))
		}
		if err := forgetStopped(ctx, t, live(), stopped); err != nil {
			t.Fatal(err)
		}
		clk.Advance(block.ShardRepublishInterval * 12 / 10) // past every data block's date
		handed := uint64(0)
		for _, nd := range live() {
			if _, err := nd.DHT().Republish(ctx); err != nil {
				t.Fatalf("republish on %s: %v", nd.ID().Short(), err)
			}
			handed += nd.DHT().Stats().HandedOff
		}
		t.Logf("round %d: %d nodes live, %d hand-offs so far", round+1, len(live()), handed)
		check(fmt.Sprintf("after republish round %d", round+1), live())
	}
	reader, err := net.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	if missing := fetchAll(ctx, reader, blocks); len(missing) > 0 {
		t.Fatalf("%d of %d blocks lost after %d rounds of churn, first %s", len(missing), len(blocks), rounds, missing[0].Short())
	}
}
