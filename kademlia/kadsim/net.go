package kadsim

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/blockstore"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/clock"
	"github.com/flowmail/flowmail/kademlia"
	"github.com/flowmail/flowmail/transport"
)

// Net is a network of DHTs on the in-memory transport. Every ID, rand
// and latency derives from one seed. Build it inside a synctest bubble
// so its timers run on the virtual clock.
type Net struct {
	t   testing.TB
	Mem *transport.MemNetwork
	// Rand draws node seeds and test choices; one goroutine only.
	Rand  *rand.Rand
	Nodes []*Node
	// Tune adjusts every node's Config before kademlia.New (K, limits...).
	Tune func(*kademlia.Config)
	// Observe, when set, gives each endpoint an observer of its requests.
	Observe func(self block.ID) transport.Observer
	// RepublishInterval, when set, is every node's
	// Config.RepublishInterval and Config.ShardRepublishInterval, and the
	// length of RepublishRound.
	RepublishInterval time.Duration

	// seeds derive the identities the net made, so nodes need not keep
	// their private keys (a simulation of 100,000 nodes would hold 1 GB
	// of them).
	seeds map[block.ID][identity.SeedSize]byte
}

// Node is one simulated node.
type Node struct {
	net   *Net
	EP    *transport.MemEndpoint
	DHT   *kademlia.DHT
	Store blockstore.Store // nil for clients
	Dead  bool
}

// Contact is where peers reach n.
func (n *Node) Contact() transport.Contact {
	return transport.Contact{ID: n.DHT.ID(), Addr: n.EP.LocalAddr()}
}

// Identity derives n's identity again (for a restart on the same ID).
func (n *Node) Identity() *identity.Identity {
	seed, ok := n.net.seeds[n.ID()]
	if !ok {
		panic("kadsim: the identity of " + n.ID().Short() + " was not made by this net")
	}
	id, err := identity.FromSeed(seed, 0, Epoch)
	if err != nil {
		panic(err)
	}
	return id
}

// ID is n's node ID.
func (n *Node) ID() block.ID { return n.DHT.ID() }

// Epoch is the virtual clock's start in every synctest bubble
// (2000-01-01 UTC); identities are stamped with it.
var Epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// MemConfig gives links 10 to 60 ms one way, and dead nodes time out
// after 2 s: the network of the large simulations.
func MemConfig() transport.MemConfig {
	return transport.MemConfig{Latency: 10 * time.Millisecond, Jitter: 50 * time.Millisecond, DialTimeout: 2 * time.Second}
}

// New returns an empty network whose endpoints close when t ends.
func New(t testing.TB, seed uint64, cfg transport.MemConfig) *Net {
	cfg.Seed = seed
	s := &Net{t: t, Mem: transport.NewMemNetwork(cfg), Rand: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), seeds: make(map[block.ID][identity.SeedSize]byte)}
	t.Cleanup(s.close)
	return s
}

// identities derives n identities from the net's rand, using every core.
func (s *Net) identities(n int) []*identity.Identity {
	seeds := make([][identity.SeedSize]byte, n)
	for i := range seeds {
		for j := 0; j < identity.SeedSize; j += 8 {
			binary.LittleEndian.PutUint64(seeds[i][j:], s.Rand.Uint64())
		}
	}
	ids := make([]*identity.Identity, n)
	var wg sync.WaitGroup
	const workers = 4
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				id, err := identity.FromSeed(seeds[i], 0, Epoch)
				if err != nil {
					panic(err) // FromSeed fails only on bad arguments
				}
				ids[i] = id
			}
		})
	}
	wg.Wait()
	for i, id := range ids {
		s.seeds[id.ID()] = seeds[i]
	}
	return ids
}

// Add starts a node for ident; it joins nothing yet.
func (s *Net) Add(ident *identity.Identity, client bool) *Node {
	s.t.Helper()
	return s.AddAt(ident, client, netip.AddrPort{})
}

// AddAt starts a node for ident at addr (zero: the network picks one).
func (s *Net) AddAt(ident *identity.Identity, client bool, addr netip.AddrPort) *Node {
	s.t.Helper()
	var obs transport.Observer
	if s.Observe != nil {
		obs = s.Observe(ident.ID())
	}
	ep, err := s.Mem.Listen(ident, transport.MemEndpointConfig{Client: client, Observer: obs, Addr: addr})
	if err != nil {
		s.t.Fatal(err)
	}
	n := &Node{net: s, EP: ep}
	cfg := kademlia.Config{
		ID:        ident.ID(),
		Transport: ep,
		Client:    client,
		Clock:     clock.Real{}, // the bubble's virtual clock
		Rand:      rand.New(rand.NewPCG(s.Rand.Uint64(), s.Rand.Uint64())),
	}
	if !client {
		n.Store = blockstore.NewMemory(blockstore.Config{Self: ident.ID()}) // Real: the bubble's virtual clock
		cfg.Store = n.Store
	}
	cfg.RepublishInterval = s.RepublishInterval
	cfg.ShardRepublishInterval = s.RepublishInterval // one round for every block
	if s.Tune != nil {
		s.Tune(&cfg)
	}
	if n.DHT, err = kademlia.New(cfg); err != nil {
		s.t.Fatal(err)
	}
	ep.SetHandler(n.DHT.Handle)
	s.Nodes = append(s.Nodes, n)
	return n
}

// AddNodes starts n full nodes or clients.
func (s *Net) AddNodes(n int, client bool) []*Node {
	out := make([]*Node, 0, n)
	for _, id := range s.identities(n) {
		out = append(out, s.Add(id, client))
	}
	return out
}

// Kill takes a node off the network for good.
func (s *Net) Kill(n *Node) {
	n.Dead = true
	n.EP.Close()
}

func (s *Net) close() {
	for _, n := range s.Nodes {
		n.EP.Close()
		if n.Store != nil {
			n.Store.Close()
		}
	}
}

// Live returns the full nodes that are up.
func (s *Net) Live() []*Node {
	var out []*Node
	for _, n := range s.Nodes {
		if !n.Dead && n.Store != nil {
			out = append(out, n)
		}
	}
	return out
}

// TrueClosest returns the IDs of the k nodes closest to target, by brute
// force over all of them.
func TrueClosest(nodes []*Node, target block.ID, k int) []block.ID {
	best := make([]block.ID, 0, k+1)
	for _, n := range nodes {
		id := n.ID()
		if len(best) == k && kademlia.CompareDistance(id, best[k-1], target) >= 0 {
			continue
		}
		i, _ := slices.BinarySearchFunc(best, id, func(a, b block.ID) int { return kademlia.CompareDistance(a, b, target) })
		best = slices.Insert(best, i, id)
		if len(best) > k {
			best = best[:k]
		}
	}
	return best
}

// ClosestNode returns the node of nodes closest to target.
func ClosestNode(nodes []*Node, target block.ID) *Node {
	best := nodes[0]
	for _, n := range nodes[1:] {
		if kademlia.CompareDistance(n.ID(), best.ID(), target) < 0 {
			best = n
		}
	}
	return best
}

// ContactIDs returns the IDs of cs.
func ContactIDs(cs []transport.Contact) []block.ID {
	ids := make([]block.ID, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	return ids
}

// Join bootstraps nodes in waves: each node of a wave knows one random
// full node that joined before, and a wave's nodes join at once. On an
// empty network the first node is the seed everyone else finds.
func (s *Net) Join(ctx context.Context, nodes []*Node, wave int) {
	s.t.Helper()
	s.JoinThrough(ctx, nodes, nil, wave)
}

// JoinThrough is Join with each node knowing one random node of members
// (nil: the live full nodes that joined before).
func (s *Net) JoinThrough(ctx context.Context, nodes, members []*Node, wave int) {
	s.t.Helper()
	if members == nil {
		for _, n := range s.Live() {
			if n.DHT.Size() > 0 {
				members = append(members, n)
			}
		}
	} else {
		members = slices.Clone(members)
	}
	if len(members) == 0 && len(nodes) > 0 {
		members, nodes = nodes[:1], nodes[1:]
	}
	for start := 0; start < len(nodes); start += wave {
		batch := nodes[start:min(start+wave, len(nodes))]
		errs := make([]error, len(batch))
		var wg sync.WaitGroup
		for i, n := range batch {
			seed := members[s.Rand.IntN(len(members))].Contact()
			wg.Go(func() { errs[i] = n.DHT.Bootstrap(ctx, []transport.Contact{seed}) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				s.t.Fatalf("node %v failed to join: %v", batch[i].ID().Short(), err)
			}
		}
		for _, n := range batch {
			if n.Store != nil {
				members = append(members, n)
			}
		}
	}
}

// DataBlock returns a small valid data block with random content.
func (s *Net) DataBlock() []byte {
	payload := make([]byte, 64)
	for i := 0; i < len(payload); i += 8 {
		binary.LittleEndian.PutUint64(payload[i:], s.Rand.Uint64())
	}
	return block.Data{Payload: payload}.Encode()
}

// RandomID draws an ID from the net's rand.
func (s *Net) RandomID() block.ID {
	var id block.ID
	for j := 0; j < block.IDSize; j += 8 {
		binary.LittleEndian.PutUint64(id[j:], s.Rand.Uint64())
	}
	return id
}
