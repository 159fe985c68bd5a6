package testnet

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/clock"
	"github.com/flowmail/flowmail/internal/testseed"
	"github.com/flowmail/flowmail/kademlia"
	"github.com/flowmail/flowmail/node"
	"github.com/flowmail/flowmail/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// randomDataBlocks makes n data blocks of 1 to 4 KiB of random bytes.
func randomDataBlocks(t *testing.T, n int) [][]byte {
	t.Helper()
	out := make([][]byte, n)
	for i := range out {
		p := make([]byte, 1024+i*3072/n)
		if _, err := crand.Read(p); err != nil {
			t.Fatal(err)
		}
		out[i] = block.Data{Payload: p}.Encode()
	}
	return out
}

// fetchAll gets every block through c in parallel and reports the IDs
// that could not be fetched or came back wrong.
func fetchAll(ctx context.Context, c *node.Node, blocks [][]byte) []block.ID {
	var (
		mu      sync.Mutex
		missing []block.ID
		wg      sync.WaitGroup
		sem     = make(chan struct{}, 16)
	)
	for _, b := range blocks {
		id := block.Sum(b)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			got, err := c.Get(ctx, id)
			if err != nil || block.Sum(got) != id {
				mu.Lock()
				missing = append(missing, id)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return missing
}

// deadDial is the dial timeout of the mail tests, which stop nodes
// and leave their ports silent: a dial to a live node on loopback
// completes well within it however busy the machine, and one to a
// stopped node costs this (lookups pass over it sooner, at the stall
// time).
const deadDial = 30 * time.Second

// patient gives a node timeouts that a busy machine never reaches with a
// live peer: minutes for handshakes and requests, deadDial for dials.
func patient(c *node.Config) {
	c.DialTimeout, c.HandshakeTimeout, c.RequestTimeout = deadDial, 2*time.Minute, 2*time.Minute
}

// refuseAt takes the UDP address a stopped node listened on, with the
// stopped node's identity, and refuses every dial there at once (the
// HELLO names another network), as a host answers for a port nobody
// serves. The identity gives it the node's stateless reset key, so a
// peer whose connection to the node outlived it (its CONNECTION_CLOSE
// lost on a busy machine) is reset at its next packet. A silent address
// would cost each dial, and each request on a stale connection, its full
// timeout, and how long that must be depends on how busy the machine
// is; a refusal or a reset is an event. It stops with the test.
func refuseAt(t *testing.T, ctx context.Context, addr netip.AddrPort, id *identity.Identity) {
	t.Helper()
	q, err := transport.ListenQUIC(ctx, transport.QUICConfig{Identity: id, Network: "stopped-node", ListenAddr: addr.String()})
	if err != nil {
		t.Fatalf("taking the address of a stopped node: %v", err)
	}
	t.Cleanup(func() { q.Close() })
}

// forgetStopped makes every running node notice that the nodes in
// stopped are gone, as its lookups and liveness checks would over the
// next minutes: each pings the stopped nodes still in its routing table
// until all have left it (a contact leaves after MaxFailures failed
// requests; a dead one may be promoted from a replacement cache and is
// then pinged in turn). It waits for that event, not for a time; with
// refuseAt on the stopped nodes' addresses, each round is quick.
func forgetStopped(ctx context.Context, t *testing.T, running []*node.Node, stopped map[block.ID]bool) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(running))
	for _, nd := range running {
		wg.Go(func() {
			began := time.Now()
			for round := 1; ctx.Err() == nil; round++ {
				var dead []transport.Contact
				for _, c := range nd.DHT().Contacts() {
					if stopped[c.ID] {
						dead = append(dead, c.Contact)
					}
				}
				if len(dead) == 0 {
					if round > 2 {
						t.Logf("%s dropped the stopped nodes in %d rounds, %v", nd.ID().Short(), round-1, time.Since(began).Round(time.Millisecond))
					}
					return
				}
				// MaxFailures pings at once: they share the one dial, and
				// its refusal drops the contact in one round.
				var pings sync.WaitGroup
				for _, c := range dead {
					for range kademlia.DefaultMaxFailures {
						pings.Go(func() {
							start := time.Now()
							_, err := nd.DHT().Ping(ctx, c)
							if d := time.Since(start); d > 10*time.Second {
								t.Logf("ping from %s to stopped %s took %v: %v", nd.ID().Short(), c.ID.Short(), d, err)
							}
						})
					}
				}
				pings.Wait()
			}
			errs <- fmt.Errorf("node %s still lists stopped nodes: %w", nd.ID().Short(), ctx.Err())
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// TestThirtyNodesStoreFetchAndSurviveChurn is the network issue's test
// over real QUIC on loopback: 30 nodes join through one, a client stores
// 200 data blocks, another client fetches them all; then 30% of the
// nodes stop, the others notice, and after a republish round every block
// that kept a live holder is held by exactly its R (block.ShardReplicas)
// closest live nodes and can be fetched.
//
// Every step waits for what it needs (stores acknowledged, the stopped
// nodes dropped from every table, republish rounds returned), so a slow
// machine makes it slower, never red. Time for republishing is moved by
// one Offset clock that every node, DHT and store shares.
func TestThirtyNodesStoreFetchAndSurviveChurn(t *testing.T) {
	ctx := hangGuard(t)
	seed := testseed.Seed(t)
	t0 := time.Now()
	phase := func(name string) { t.Logf("%6.2fs %s", time.Since(t0).Seconds(), name) }
	clk := &clock.Offset{}
	// Lookups pass over a peer that stays silent for the stall time, a
	// fraction of a second: on a busy machine that is a live peer, and
	// a republish that passed over it would leave it without the block.
	// The stall heuristic has its own tests in kademlia; here lookups
	// wait for every answer.
	//
	// Every request may take as long as a loaded machine needs (a STORE
	// ends in a synced write); stopped nodes refuse at once (refuseAt),
	// and only a dial caught half-way when its node stopped waits out
	// deadDial.
	//
	// The test runs the republish rounds itself: the nodes' own upkeep
	// loops read the same clock, and once it jumps they would all
	// republish everything at once, beside the test's rounds (21 times
	// the work; this, with the time budget, was the original flake).
	exact := exactLookups
	net, err := Start(ctx, Config{Nodes: 30, Dir: t.TempDir(), SingleSeed: true, Clock: clk, Logger: testLogger(t),
		Tune: func(_ int, c *node.Config) { exact(c) }, TuneClient: exact})
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	phase("30 nodes up")
	for i, nd := range net.Running() {
		if nd.DHT().Size() == 0 {
			t.Fatalf("node %d has an empty routing table after joining", i)
		}
	}

	writer, err := net.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	blocks := randomDataBlocks(t, 200)
	var wg sync.WaitGroup
	errs := make([]error, len(blocks))
	sem := make(chan struct{}, 16)
	for i, b := range blocks {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = writer.Put(ctx, b, 10*24*time.Hour) // outlives the rounds
		}()
	}
	wg.Wait()
	writer.Close()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("storing block %d: %v", i, err)
		}
	}

	phase("200 blocks stored")
	reader, err := net.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if missing := fetchAll(ctx, reader, blocks); len(missing) > 0 {
		t.Fatalf("%d of %d blocks not fetched back, first %s", len(missing), len(blocks), missing[0].Short())
	}
	reader.Close()
	phase("200 blocks fetched")

	// Stop 30% of the nodes, chosen by the seed.
	r := rand.New(rand.NewPCG(seed, seed))
	stopped := map[block.ID]bool{}
	for _, i := range r.Perm(30)[:9] {
		id, addr := net.Node(i).Identity(), net.Node(i).Addr()
		stopped[id.ID()] = true
		if err := net.Stop(i); err != nil {
			t.Fatalf("stopping node %d: %v", i, err)
		}
		refuseAt(t, ctx, addr, id)
	}
	phase("9 nodes stopped")
	// A data block whose R holders were all among the stopped is gone
	// (the erasure code covers that for mail: the mail churn tests);
	// every other block must come back to exactly its R closest.
	ids := make([]block.ID, len(blocks))
	for i, b := range blocks {
		ids[i] = block.Sum(b)
	}
	_, kept := holdersAt(ctx, net.Running(), ids)
	var survivors [][]byte
	var survivorIDs []block.ID
	for i, n := range kept {
		if n > 0 {
			survivors, survivorIDs = append(survivors, blocks[i]), append(survivorIDs, ids[i])
		}
	}
	t.Logf("%d of %d blocks kept a live holder with 9 of 30 nodes stopped", len(survivors), len(blocks))
	if len(survivors) == 0 {
		t.Fatal("no block kept a live holder: the test proves nothing")
	}
	if err := forgetStopped(ctx, t, net.Running(), stopped); err != nil {
		t.Fatal(err)
	}
	phase("stopped nodes dropped from every routing table")
	// One republish round past every data block's date, with the nodes
	// taking turns as their jittered dates would have them: the first
	// holder of a block to republish it resets the date at the others, so
	// usually one holder per block works. (With the stopped nodes dropped
	// first, one round finds the true closest; a second one used to be
	// needed to meet and drop them.)
	var republished atomic.Int64
	clk.Advance(block.ShardRepublishInterval * 12 / 10)
	for _, nd := range net.Running() {
		start := time.Now()
		n, err := nd.DHT().Republish(ctx)
		if err != nil {
			t.Fatalf("republish on %s: %v", nd.ID().Short(), err)
		}
		t.Logf("%s republished %d blocks in %v", nd.ID().Short(), n, time.Since(start).Round(time.Millisecond))
		republished.Add(int64(n))
	}
	phase("republish round done")
	if republished.Load() == 0 {
		t.Fatal("no node republished anything")
	}
	// Every block that kept a holder is back at exactly its R closest
	// live nodes.
	at, all := holdersAt(ctx, net.Running(), survivorIDs)
	var short []block.ID
	for i, id := range survivorIDs {
		if at[i] != block.ShardReplicas || all[i] != block.ShardReplicas {
			short = append(short, id)
			t.Logf("block %v: %d holders, %d among its %d closest live", id.Short(), all[i], at[i], block.ShardReplicas)
		}
	}
	t.Logf("%d republishes; %d of %d surviving blocks not at exactly their %d closest", republished.Load(), len(short), len(survivors), block.ShardReplicas)
	if len(short) > 0 {
		t.Fatalf("%d of %d surviving blocks are not held by exactly their %d closest live nodes after republishing, first %s", len(short), len(survivors), block.ShardReplicas, short[0].Short())
	}
	after, err := net.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	if missing := fetchAll(ctx, after, survivors); len(missing) > 0 {
		t.Fatalf("after stopping 9 of 30 nodes and republishing, %d of %d surviving blocks are lost, first %s", len(missing), len(survivors), missing[0].Short())
	}
	phase("surviving blocks fetched after churn")
}

// TestStartAgainOnTheSameDirectory restarts a whole testnet on its
// directory. Its nodes come back on new ports, so what they saved of each
// other is dead, and a node that joined through those contacts would
// wait out a dial timeout on each (seconds per node): no node may start
// with them.
func TestStartAgainOnTheSameDirectory(t *testing.T) {
	ctx := hangGuard(t)
	dir := t.TempDir()
	var withOldContacts []int
	var mu sync.Mutex
	start := func() *Net {
		net, err := Start(ctx, Config{Nodes: 4, Dir: dir, Tune: func(i int, c *node.Config) {
			if _, err := os.Stat(filepath.Join(c.DataDir, node.SavedContactFile)); err == nil {
				mu.Lock()
				withOldContacts = append(withOldContacts, i)
				mu.Unlock()
			}
		}})
		if err != nil {
			t.Fatalf("start on %s: %v", dir, err)
		}
		return net
	}
	net := start()
	bootstrap := filepath.Join(dir, BootstrapFileName)
	if _, err := os.Stat(bootstrap); err != nil {
		t.Fatalf("no bootstrap file while running: %v", err)
	}
	if err := net.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bootstrap); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("bootstrap file left behind by a stopped testnet: %v", err)
	}
	saved, _ := filepath.Glob(filepath.Join(dir, "node-*", node.SavedContactFile))
	if len(saved) == 0 {
		t.Fatal("the stopped nodes saved no contacts: the test proves nothing")
	}
	net = start()
	defer net.Close()
	if got := len(net.Running()); got != 4 {
		t.Fatalf("%d nodes running after the second start", got)
	}
	if len(withOldContacts) > 0 {
		t.Fatalf("nodes %v started with the dead contacts of the last run", withOldContacts)
	}
}
