package kadsim

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/kademlia"
	"github.com/flowmail/flowmail/transport"
)

// Adversary is a coalition of colluding nodes that lie. Each of its
// nodes answers PING honestly (so it stays in routing tables) and:
//   - FIND_NODE and FIND_BLOCK: NODES naming the coalition's nodes
//     closest to the target, and made-up IDs closer still at addresses
//     where nobody listens, or at a coalition node's address (which a
//     handshake refuses);
//   - STORE: STORED, naming nobody, and stores nothing;
//   - LIST: junk entries in the prefix;
//   - DELETE: OK.
type Adversary struct {
	net *Net

	mu      sync.Mutex
	rng     *rand.Rand
	members []*Node // sorted by nothing; searched by distance
	// DeadAddrs are addresses in the network's range where nobody
	// listens, handed out with made-up IDs.
	deadAddrs []netip.AddrPort
}

// NewAdversary returns an empty coalition on s.
func (s *Net) NewAdversary() *Adversary {
	a := &Adversary{net: s, rng: rand.New(rand.NewPCG(s.Rand.Uint64(), s.Rand.Uint64()))}
	for i := range 64 {
		a.deadAddrs = append(a.deadAddrs, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 255, byte(i), 1}), 9))
	}
	return a
}

// Corrupt makes n a member: from now on its endpoint answers as the
// coalition does.
func (a *Adversary) Corrupt(n *Node) {
	a.mu.Lock()
	a.members = append(a.members, n)
	a.mu.Unlock()
	n.EP.SetHandler(func(ctx context.Context, from transport.Peer, req []byte) []byte {
		return a.answer(ctx, n, from, req)
	})
}

// CorruptQuiet makes n a quiet member: it answers every request as an
// honest node would, except STORE, which it acknowledges and drops. A
// quiet member is never caught lying; ground next to a target, it takes
// the places where the target's blocks should be stored.
func (a *Adversary) CorruptQuiet(n *Node) {
	a.mu.Lock()
	a.members = append(a.members, n)
	a.mu.Unlock()
	n.EP.SetHandler(func(ctx context.Context, from transport.Peer, req []byte) []byte {
		if m, err := kademlia.Decode(req); err == nil {
			if _, ok := m.(kademlia.Store); ok {
				return encode(kademlia.Stored{})
			}
		}
		return n.DHT.Handle(ctx, from, req)
	})
}

// Members returns the coalition's nodes.
func (a *Adversary) Members() []*Node {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.members)
}

func encode(m kademlia.Message) []byte {
	b, err := kademlia.Encode(m)
	if err != nil {
		panic(err) // the adversary builds only valid messages
	}
	return b
}

func (a *Adversary) answer(ctx context.Context, self *Node, from transport.Peer, req []byte) []byte {
	m, err := kademlia.Decode(req)
	if err != nil {
		return self.DHT.Handle(ctx, from, req)
	}
	switch m := m.(type) {
	case kademlia.FindNode:
		return encode(kademlia.Nodes{Contacts: a.lies(self, m.Target)})
	case kademlia.FindBlock:
		return encode(kademlia.Nodes{Contacts: a.lies(self, m.ID)})
	case kademlia.Store:
		return encode(kademlia.Stored{})
	case kademlia.Delete:
		return encode(kademlia.OK{})
	case kademlia.List:
		return encode(a.junkListing(m))
	}
	return self.DHT.Handle(ctx, from, req)
}

// lies returns K contacts for target: the coalition's members closest to
// it (real nodes that lie in turn), and made-up IDs closer than anyone
// at dead addresses or at a member's address.
func (a *Adversary) lies(self *Node, target block.ID) []transport.Contact {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]transport.Contact, 0, kademlia.K)
	best := make([]*Node, 0, kademlia.K/2+1)
	for _, n := range a.members {
		if n == self || n.Dead {
			continue
		}
		i, _ := slices.BinarySearchFunc(best, n, func(x, y *Node) int { return kademlia.CompareDistance(x.ID(), y.ID(), target) })
		if i < kademlia.K/2 {
			best = slices.Insert(best, i, n)
			best = best[:min(len(best), kademlia.K/2)]
		}
	}
	for _, n := range best {
		out = append(out, n.Contact())
	}
	for len(out) < kademlia.K {
		fake := target
		// Share the first 20 bytes with the target: closer than any node.
		for j := 20; j < block.IDSize; j += 4 {
			binary.BigEndian.PutUint32(fake[j:], a.rng.Uint32())
		}
		addr := a.deadAddrs[a.rng.IntN(len(a.deadAddrs))]
		if len(best) > 0 && a.rng.IntN(2) == 0 {
			addr = best[a.rng.IntN(len(best))].EP.LocalAddr()
		}
		out = append(out, transport.Contact{ID: fake, Addr: addr})
	}
	return out
}

// junkListing answers LIST with made-up IDs in the prefix, in order.
func (a *Adversary) junkListing(m kademlia.List) kademlia.Listed {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := min(int(m.Limit), 50)
	ids := make([]block.ID, n)
	for i := range ids {
		id := m.Target
		for j := 8; j < block.IDSize; j += 8 {
			binary.BigEndian.PutUint64(id[j:], a.rng.Uint64())
		}
		ids[i] = id
	}
	slices.SortFunc(ids, func(x, y block.ID) int { return kademlia.CompareDistance(x, y, block.ID{}) })
	out := kademlia.Listed{}
	for _, id := range ids {
		if m.HasAfter && !block.Less(m.After, id) {
			continue
		}
		out.Entries = append(out.Entries, kademlia.ListedEntry{ID: id, StoredAt: uint64(time.Now().Unix())})
	}
	return out
}

// GrindBlock returns a small valid data block whose ID shares at least
// bits leading bits with target.
func (s *Net) GrindBlock(target block.ID, bits int) []byte {
	for {
		if b := s.DataBlock(); block.CommonPrefixLen(block.Sum(b), target) >= bits {
			return b
		}
	}
}

// GrindSybils returns count identities whose IDs share at least bits
// leading bits with target, as an attacker grinds keys: it derives
// identities from the net's rand until enough land next to target.
func (s *Net) GrindSybils(target block.ID, bits, count int) []*identity.Identity {
	var out []*identity.Identity
	for len(out) < count {
		for _, id := range s.identities(256) {
			if block.CommonPrefixLen(id.ID(), target) >= bits && len(out) < count {
				out = append(out, id)
			}
		}
	}
	return out
}
