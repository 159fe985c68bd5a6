package testnet

import (
	"context"
	crand "crypto/rand"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/flowmail/flowmail/block"
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
	net, err := Start(ctx, Config{Nodes: 30, Dir: t.TempDir(), SingleSeed: true})
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
			errs[i] = writer.Put(ctx, b, time.Hour)
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
	for _, nd := range net.Running() {
		if _, err := nd.DHT().Republish(ctx); err != nil {
			t.Logf("republish on %s: %v", nd.ID().Short(), err)
		}
	}
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
