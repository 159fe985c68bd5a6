package kademlia_test

import (
	"context"
	"github.com/flowmail/flowmail/internal/syncbuf"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/blockstore"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/clock"
	"github.com/flowmail/flowmail/internal/testseed"
	"github.com/flowmail/flowmail/kademlia"
	"github.com/flowmail/flowmail/transport"
)

// quicNet is a few DHTs over real QUIC on 127.0.0.1, each full node with
// a Badger store in its own directory, all on one clock.Offset that a
// test moves forward to make republishing due. Node keys come from the
// test's seed.
type quicNet struct {
	t    *testing.T
	clk  *clock.Offset
	k    int
	rng  *rand.Rand
	mu   sync.Mutex
	live []*quicNode
	logs *syncbuf.Buffer // every node's debug log, printed if the test fails
}

type quicNode struct {
	d     *kademlia.DHT
	q     *transport.QUIC
	store blockstore.Store // nil in client mode
	once  sync.Once
}

func newQUICNet(t *testing.T, k int) *quicNet {
	n := &quicNet{t: t, clk: &clock.Offset{}, k: k, rng: testseed.Rand(t), logs: &syncbuf.Buffer{}}
	// Registered first, so it runs after every node has stopped: a failure
	// shows what each node did (lookups that failed, stores refused).
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("nodes' debug log:\n%s", n.logs.String())
		}
	})
	return n
}

// handlerFor lets a test answer requests its own way (a liar); nil
// answers as the DHT does.
type handlerFor func(d *kademlia.DHT) transport.Handler

// add starts a node that joins through up to 4 live full nodes.
func (n *quicNet) add(ctx context.Context, client bool, h handlerFor) *quicNode {
	n.t.Helper()
	n.mu.Lock()
	var seed [identity.SeedSize]byte
	for i := range seed {
		seed[i] = byte(n.rng.Uint32())
	}
	pcg := rand.NewPCG(n.rng.Uint64(), n.rng.Uint64())
	n.mu.Unlock()
	id, err := identity.FromSeed(seed, 0, time.Unix(1_767_225_600, 0))
	if err != nil {
		n.t.Fatal(err)
	}
	q, err := transport.ListenQUIC(ctx, transport.QUICConfig{Identity: id, Network: "records-test", ListenAddr: "127.0.0.1:0", Client: client})
	if err != nil {
		n.t.Fatal(err)
	}
	qn := &quicNode{q: q}
	cfg := kademlia.Config{
		ID: id.ID(), Transport: q, Client: client, K: n.k, Clock: n.clk, Rand: rand.New(pcg),
		BucketIPLimit: -1, TableIPLimit: -1,
		Logger: slog.New(slog.NewTextHandler(n.logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", id.ID().Short()),
	}
	if !client {
		if qn.store, err = blockstore.OpenBadger(n.t.TempDir(), blockstore.Config{Self: id.ID(), Clock: n.clk, Footprint: blockstore.FootprintShared}); err != nil {
			n.t.Fatal(err)
		}
		cfg.Store = qn.store
	}
	if qn.d, err = kademlia.New(cfg); err != nil {
		n.t.Fatal(err)
	}
	if h != nil {
		q.SetHandler(h(qn.d))
	} else {
		q.SetHandler(qn.d.Handle)
	}
	n.t.Cleanup(qn.stop)
	n.mu.Lock()
	var boot []transport.Contact
	for _, o := range n.live {
		if o.store != nil && len(boot) < 4 {
			boot = append(boot, o.contact())
		}
	}
	if !client {
		n.live = append(n.live, qn)
	}
	n.mu.Unlock()
	if len(boot) > 0 {
		if err := qn.d.Bootstrap(ctx, boot); err != nil {
			n.t.Fatalf("bootstrap: %v", err)
		}
	}
	return qn
}

func (qn *quicNode) contact() transport.Contact {
	return transport.Contact{ID: qn.d.ID(), Addr: qn.q.LocalAddr()}
}

// stop closes the node's transport and store.
func (qn *quicNode) stop() {
	qn.once.Do(func() {
		qn.q.Close()
		if qn.store != nil {
			qn.store.Close()
		}
	})
}

// remove stops qn and forgets it.
func (n *quicNet) remove(qn *quicNode) {
	qn.stop()
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, o := range n.live {
		if o == qn {
			n.live = append(n.live[:i], n.live[i+1:]...)
			return
		}
	}
}

// closestLive returns the live full nodes by distance to id.
func (n *quicNet) closestLive(id block.ID) []*quicNode {
	n.mu.Lock()
	out := append([]*quicNode(nil), n.live...)
	n.mu.Unlock()
	sortByDistance(out, id)
	return out
}

func sortByDistance(ns []*quicNode, id block.ID) {
	for i := 1; i < len(ns); i++ {
		for j := i; j > 0 && kademlia.CompareDistance(ns[j].d.ID(), ns[j-1].d.ID(), id) < 0; j-- {
			ns[j], ns[j-1] = ns[j-1], ns[j]
		}
	}
}

// everyLive runs fn on every live full node at once, as nodes do their
// rounds independently, and returns when all are done. On a loaded
// machine one after another would add up every node's waits on the
// nodes that left.
func (n *quicNet) everyLive(fn func(*quicNode)) {
	n.mu.Lock()
	nodes := append([]*quicNode(nil), n.live...)
	n.mu.Unlock()
	var wg sync.WaitGroup
	for _, qn := range nodes {
		wg.Go(func() { fn(qn) })
	}
	wg.Wait()
}
