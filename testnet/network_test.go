package testnet

import (
	"context"
	crand "crypto/rand"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/internal/clock"
	"github.com/flowmail/flowmail/node"
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

// TestThirtyNodesStoreFetchAndSurviveChurn is the network issue's test
// over real QUIC on loopback: 30 nodes join through one, a client stores
// 200 blocks, another client fetches them all; then 30% of the nodes stop
// and, after a republish round, every block is still there.
func TestThirtyNodesStoreFetchAndSurviveChurn(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	t0 := time.Now()
	phase := func(name string) { t.Logf("%6.2fs %s", time.Since(t0).Seconds(), name) }
	// The DHT clock can jump forward, so the republish an hour after
	// storing happens now; the block stores keep the wall clock.
	var clk clock.Offset
	net, err := Start(ctx, Config{Nodes: 30, Dir: t.TempDir(), SingleSeed: true,
		Tune: func(_ int, c *node.Config) { c.Clock, c.DialTimeout = &clk, time.Second }})
	phase("30 nodes up")
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
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
			errs[i] = writer.Put(ctx, b, 24*time.Hour)
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

	// Stop 30% of the nodes, chosen at random (the seed is logged).
	seed := rand.Uint64()
	t.Logf("churn seed %d", seed)
	r := rand.New(rand.NewPCG(seed, seed))
	for _, i := range r.Perm(30)[:9] {
		if err := net.Stop(i); err != nil {
			t.Fatalf("stopping node %d: %v", i, err)
		}
	}
	phase("9 nodes stopped")
	for _, nd := range net.Running() {
		nd.DHT().CheckLiveness(ctx)
	}
	phase("liveness checked")
	// Two republish rounds, an hour and a quarter apart, with the nodes
	// taking turns as their jittered dates would have them: the first
	// holder of a block to republish it resets the date at the others, so
	// usually one holder per block works. The first round meets the dead
	// contacts and drops them; the second finds the true closest.
	var republished atomic.Int64
	for round := 1; round <= 2; round++ {
		clk.Advance(75 * time.Minute) // past every republish date
		for _, nd := range net.Running() {
			n, err := nd.DHT().Republish(ctx)
			if err != nil {
				t.Logf("republish on %s: %v", nd.ID().Short(), err)
			}
			republished.Add(int64(n))
		}
		phase("republish round done")
	}
	if republished.Load() == 0 {
		t.Fatal("no node republished anything")
	}
	// Every block is back at all K (20) of its closest live nodes.
	live := net.Running()
	short := 0
	for _, b := range blocks {
		id := block.Sum(b)
		sort.Slice(live, func(i, j int) bool { return block.Less(block.Xor(live[i].ID(), id), block.Xor(live[j].ID(), id)) })
		for _, nd := range live[:20] {
			if _, err := nd.Store().Stat(ctx, id); err != nil {
				short++
				break
			}
		}
	}
	if short > len(blocks)/100 {
		t.Fatalf("%d of %d blocks are not held by all 20 of their closest live nodes after republishing", short, len(blocks))
	}
	t.Logf("%d republishes; %d of %d blocks short of full replication", republished.Load(), short, len(blocks))
	phase("republished")
	after, err := net.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	if missing := fetchAll(ctx, after, blocks); len(missing) > 0 {
		t.Fatalf("after stopping 9 of 30 nodes and republishing, %d of %d blocks are lost, first %s", len(missing), len(blocks), missing[0].Short())
	}
	phase("200 blocks fetched after churn")
}

// TestStartAgainOnTheSameDirectory restarts a whole testnet on its
// directory. Its nodes come back on new ports, so what they saved of each
// other is dead; with dials that would hang for a minute, the second
// start only succeeds in time if nobody waits on those old contacts
// (10 s when they did, 0.1 s now).
func TestStartAgainOnTheSameDirectory(t *testing.T) {
	dir := t.TempDir()
	start := func() *Net {
		ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
		defer cancel()
		net, err := Start(ctx, Config{Nodes: 4, Dir: dir, Tune: func(_ int, c *node.Config) { c.DialTimeout = time.Minute }})
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
	net = start()
	defer net.Close()
	if got := len(net.Running()); got != 4 {
		t.Fatalf("%d nodes running after the second start", got)
	}
}
