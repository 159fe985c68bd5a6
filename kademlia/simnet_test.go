package kademlia

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/blockstore"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/transport"
)

// simNet is a network of DHTs on the in-memory transport. Every ID, rand
// and latency derives from one seed. Build it inside a synctest bubble so
// its timers run on the virtual clock.
type simNet struct {
	t     testing.TB
	net   *transport.MemNetwork
	rng   *rand.Rand // draws node seeds and test choices; one goroutine only
	nodes []*simNode
	// tune adjusts every node's Config before New (K, limits...).
	tune func(*Config)
	// observe, when set, gives each endpoint an observer of its requests.
	observe func(self block.ID) transport.Observer
}

type simNode struct {
	ident *identity.Identity
	ep    *transport.MemEndpoint
	dht   *DHT
	store blockstore.Store // nil for clients
	dead  bool
}

func (n *simNode) contact() transport.Contact {
	return transport.Contact{ID: n.dht.ID(), Addr: n.ep.LocalAddr()}
}

// simEpoch is the virtual clock's start in every synctest bubble
// (2000-01-01 UTC); identities are stamped with it.
var simEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func newSimNet(t testing.TB, seed uint64, cfg transport.MemConfig) *simNet {
	cfg.Seed = seed
	s := &simNet{t: t, net: transport.NewMemNetwork(cfg), rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	t.Cleanup(s.close)
	return s
}

// identities derives n identities from the net's rand, using every core.
func (s *simNet) identities(n int) []*identity.Identity {
	seeds := make([][identity.SeedSize]byte, n)
	for i := range seeds {
		for j := 0; j < identity.SeedSize; j += 8 {
			binary.LittleEndian.PutUint64(seeds[i][j:], s.rng.Uint64())
		}
	}
	ids := make([]*identity.Identity, n)
	var wg sync.WaitGroup
	const workers = 4
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				id, err := identity.FromSeed(seeds[i], 0, simEpoch)
				if err != nil {
					panic(err) // FromSeed fails only on bad arguments
				}
				ids[i] = id
			}
		})
	}
	wg.Wait()
	return ids
}

// add starts a node for ident; it joins nothing yet.
func (s *simNet) add(ident *identity.Identity, client bool) *simNode {
	s.t.Helper()
	var obs transport.Observer
	if s.observe != nil {
		obs = s.observe(ident.ID())
	}
	ep, err := s.net.Listen(ident, transport.MemEndpointConfig{Client: client, Observer: obs})
	if err != nil {
		s.t.Fatal(err)
	}
	n := &simNode{ident: ident, ep: ep}
	cfg := Config{
		ID:        ident.ID(),
		Transport: ep,
		Client:    client,
		Now:       time.Now, // the bubble's virtual clock
		Rand:      rand.New(rand.NewPCG(s.rng.Uint64(), s.rng.Uint64())),
	}
	if !client {
		n.store = blockstore.NewMemory(blockstore.Config{Self: ident.ID()}) // Real: the bubble's virtual clock
		cfg.Store = n.store
	}
	if s.tune != nil {
		s.tune(&cfg)
	}
	if n.dht, err = New(cfg); err != nil {
		s.t.Fatal(err)
	}
	ep.SetHandler(n.dht.Handle)
	s.nodes = append(s.nodes, n)
	return n
}

// addNodes starts n full nodes or clients.
func (s *simNet) addNodes(n int, client bool) []*simNode {
	out := make([]*simNode, 0, n)
	for _, id := range s.identities(n) {
		out = append(out, s.add(id, client))
	}
	return out
}

// kill takes a node off the network for good.
func (s *simNet) kill(n *simNode) {
	n.dead = true
	n.ep.Close()
}

func (s *simNet) close() {
	for _, n := range s.nodes {
		n.ep.Close()
		if n.store != nil {
			n.store.Close()
		}
	}
}

// live returns the full nodes that are up.
func (s *simNet) live() []*simNode {
	var out []*simNode
	for _, n := range s.nodes {
		if !n.dead && n.store != nil {
			out = append(out, n)
		}
	}
	return out
}

// trueClosest returns the IDs of the k nodes closest to target, by brute
// force over all of them.
func trueClosest(nodes []*simNode, target block.ID, k int) []block.ID {
	best := make([]block.ID, 0, k+1)
	for _, n := range nodes {
		id := n.dht.ID()
		if len(best) == k && compareDistance(id, best[k-1], target) >= 0 {
			continue
		}
		i, _ := slices.BinarySearchFunc(best, id, func(a, b block.ID) int { return compareDistance(a, b, target) })
		best = slices.Insert(best, i, id)
		if len(best) > k {
			best = best[:k]
		}
	}
	return best
}

func contactIDs(cs []transport.Contact) []block.ID {
	ids := make([]block.ID, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	return ids
}

// join bootstraps nodes in waves: each node of a wave knows one random
// full node that joined before, and a wave's nodes join at once. On an
// empty network the first node is the seed everyone else finds.
func (s *simNet) join(ctx context.Context, nodes []*simNode, wave int) {
	s.t.Helper()
	var members []*simNode
	for _, n := range s.live() {
		if n.dht.Size() > 0 {
			members = append(members, n)
		}
	}
	if len(members) == 0 && len(nodes) > 0 {
		members, nodes = nodes[:1], nodes[1:]
	}
	for start := 0; start < len(nodes); start += wave {
		batch := nodes[start:min(start+wave, len(nodes))]
		errs := make([]error, len(batch))
		var wg sync.WaitGroup
		for i, n := range batch {
			seed := members[s.rng.IntN(len(members))].contact()
			wg.Go(func() { errs[i] = n.dht.Bootstrap(ctx, []transport.Contact{seed}) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				s.t.Fatalf("node %v failed to join: %v", batch[i].dht.ID().Short(), err)
			}
		}
		for _, n := range batch {
			if n.store != nil {
				members = append(members, n)
			}
		}
	}
}

// dataBlock returns a small valid data block with random content.
func (s *simNet) dataBlock() []byte {
	payload := make([]byte, 64)
	for i := 0; i < len(payload); i += 8 {
		binary.LittleEndian.PutUint64(payload[i:], s.rng.Uint64())
	}
	return block.Data{Payload: payload}.Encode()
}

func (s *simNet) randomID() block.ID {
	var id block.ID
	for j := 0; j < block.IDSize; j += 8 {
		binary.LittleEndian.PutUint64(id[j:], s.rng.Uint64())
	}
	return id
}
