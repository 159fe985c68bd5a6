package kademlia

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/blockstore"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/transport"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// identityBlock returns a valid pubkey block.
func identityBlock(t *testing.T) []byte {
	t.Helper()
	id, err := identity.FromSeed([32]byte{9}, 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	return id.Public().Block
}

// meshSeed gives every node every other node, directly in the tables, so
// a test starts from a known state without bootstrap traffic.
func meshSeed(nodes []*simNode) {
	for _, a := range nodes {
		for _, b := range nodes {
			a.dht.table.seen(b.contact(), time.Now())
		}
	}
}

func smallNet(t *testing.T, seed uint64, k, alpha int) *simNet {
	s := newSimNet(t, seed, transport.MemConfig{Latency: 5 * time.Millisecond, Jitter: 20 * time.Millisecond, DialTimeout: time.Second})
	s.tune = func(c *Config) {
		c.K, c.Alpha = k, alpha
		c.BucketIPLimit, c.TableIPLimit = -1, -1
	}
	return s
}

// TestLookupTerminatesWhenKClosestAnswered builds a network where the
// answer is known: A knows only B, B and every other node know everyone
// (11 nodes, K = 8, no bucket overflows).
// A asks B (one request); B names the true K closest, which A asks (K
// requests); they name no one closer, so A stops: 1+K requests, and the
// closest contact was learnt one hop away.
func TestLookupTerminatesWhenKClosestAnswered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const k = 8
		s := smallNet(t, 1, k, 3)
		nodes := s.addNodes(12, false)
		a, b, rest := nodes[0], nodes[1], nodes[1:]
		meshSeed(rest)
		for _, n := range rest {
			if n.dht.Size() != len(rest)-1 {
				t.Fatalf("a bucket overflowed (table of %d); pick another seed", n.dht.Size())
			}
		}
		for range 20 {
			target := s.randomID()
			want := trueClosest(rest, target, k)
			if slices.Contains(want, b.dht.ID()) {
				continue // B itself among the closest: a shorter path
			}
			// A forgets what its last lookup taught it.
			a.dht.table = newTable(a.dht.ID(), a.dht.table.limits, time.Now())
			a.dht.table.seen(b.contact(), time.Now())
			got, st, err := a.dht.Lookup(t.Context(), target)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(contactIDs(got), want) {
				t.Fatalf("lookup found %v, want %v", contactIDs(got), want)
			}
			if st.Messages != 1+k || st.Hops != 2 || st.Rounds != 2 || st.Failed != 0 {
				t.Fatalf("stats %+v, want %d messages, 2 hops, 2 rounds", st, 1+k)
			}
		}
	})
}

func TestLookupSkipsDeadAndFindsTrueClosest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const k = 4
		s := smallNet(t, 5, k, 3)
		nodes := s.addNodes(40, false)
		meshSeed(nodes)
		target := s.randomID()
		from := nodes[0]
		closest := trueClosest(nodes[1:], target, 2*k)
		// The two closest die; the lookup must answer with the next live
		// ones.
		for _, n := range nodes {
			if n.dht.ID() == closest[0] || n.dht.ID() == closest[1] {
				s.kill(n)
			}
		}
		got, st, err := from.dht.Lookup(t.Context(), target)
		if err != nil {
			t.Fatal(err)
		}
		// Every peer still names the dead nodes among its K closest, so
		// the lookup may hear of fewer than K live ones; those it returns
		// are the closest live nodes, in order.
		if n := len(got); n < k-2 || !slices.Equal(contactIDs(got), closest[2:2+n]) {
			t.Fatalf("lookup found %v, want a prefix of the live %v", contactIDs(got), closest[2:2+k])
		}
		if st.Failed < 2 {
			t.Fatalf("stats %+v: the dead nodes were not asked", st)
		}
		if st.Messages >= len(nodes) {
			t.Fatalf("the lookup asked %d nodes: it did not stop at the K closest", st.Messages)
		}
	})
}

func TestLookupIgnoresSelf(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := smallNet(t, 3, 4, 3)
		nodes := s.addNodes(10, false)
		meshSeed(nodes)
		got, _, err := nodes[0].dht.Lookup(t.Context(), nodes[0].dht.ID())
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(contactIDs(got), nodes[0].dht.ID()) {
			t.Fatal("a lookup returned the node that ran it")
		}
	})
}

func TestLookupWithEmptyTableFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := smallNet(t, 4, 4, 3)
		n := s.addNodes(1, false)[0]
		if _, _, err := n.dht.Lookup(t.Context(), testID(1)); !errors.Is(err, ErrNoContacts) {
			t.Fatalf("got %v, want ErrNoContacts", err)
		}
	})
}

// liar answers FIND_BLOCK with a valid block that is not the one asked
// for, and everything else honestly.
func liar(d *DHT, fake []byte) transport.Handler {
	return func(ctx context.Context, from transport.Peer, req []byte) []byte {
		if m, err := Decode(req); err == nil {
			if _, ok := m.(FindBlock); ok {
				b, _ := Encode(BlockReply{Lifetime: 60, Block: fake})
				return b
			}
		}
		return d.Handle(ctx, from, req)
	}
}

func TestGetDiscardsBlockWhoseIDDoesNotMatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := smallNet(t, 5, 20, 1) // alpha 1: requests go in distance order
		nodes := s.addNodes(8, false)
		client := s.addNodes(1, true)[0]
		meshSeed(nodes)
		for _, n := range nodes {
			client.dht.table.seen(n.contact(), time.Now())
		}
		// A block whose closest node is the liar, held only by the
		// farthest node.
		liarNode := nodes[0]
		var blk []byte
		var order []block.ID
		for i := 0; ; i++ {
			blk = block.Data{Payload: []byte{byte(i), byte(i >> 8), 1}}.Encode()
			if order = trueClosest(nodes, block.Sum(blk), len(nodes)); order[0] == liarNode.dht.ID() {
				break
			}
		}
		holder := nodes[slices.IndexFunc(nodes, func(n *simNode) bool { return n.dht.ID() == order[len(order)-1] })]
		id := block.Sum(blk)
		if _, err := holder.store.Put(t.Context(), blk, time.Hour, blockstore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		liarNode.ep.SetHandler(liar(liarNode.dht, block.Data{Payload: []byte("something else")}.Encode()))

		got, lifetime, err := client.dht.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, blk) || lifetime <= 0 || lifetime > time.Hour {
			t.Fatalf("Get returned %d bytes with lifetime %v", len(got), lifetime)
		}
		if slices.Contains(contactIDs(client.dht.Closest(id, 20)), liarNode.dht.ID()) {
			t.Fatal("the liar stayed in the routing table")
		}

		// With only the liar answering BLOCK, Get finds nothing.
		client.dht.table.seen(liarNode.contact(), time.Now())
		other := block.Data{Payload: []byte("nobody has this")}.Encode()
		if _, _, err := client.dht.Get(t.Context(), block.Sum(other)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("got %v, want ErrNotFound", err)
		}
	})
}

func TestPutGetDeleteOnNetwork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := smallNet(t, 6, 5, 3)
		nodes := s.addNodes(30, false)
		s.join(t.Context(), nodes, 10)
		client := s.addNodes(1, true)[0]
		s.join(t.Context(), []*simNode{client}, 1)

		blk, pre := dataBlockWithDeletion("a shard that will be deleted")
		id := block.Sum(blk)
		stored, err := client.dht.Put(t.Context(), blk, time.Hour)
		if err != nil || stored != 5 {
			t.Fatalf("Put stored at %d nodes (%v), want 5", stored, err)
		}
		holders := 0
		for _, n := range s.live() {
			if _, err := n.store.Stat(t.Context(), id); err == nil {
				holders++
				if !slices.Contains(trueClosest(s.live(), id, 5), n.dht.ID()) {
					t.Errorf("%v holds the block but is not among the 5 closest", n.dht.ID().Short())
				}
			}
		}
		if holders != 5 {
			t.Fatalf("%d nodes hold the block, want 5", holders)
		}
		got, _, err := nodes[7].dht.Get(t.Context(), id)
		if err != nil || !bytes.Equal(got, blk) {
			t.Fatalf("Get: %v", err)
		}
		if n, err := client.dht.Delete(t.Context(), id, [32]byte{1}); err == nil || n != 0 {
			t.Fatalf("Delete with a wrong preimage deleted %d (%v)", n, err)
		}
		if n, err := client.dht.Delete(t.Context(), id, pre); err != nil || n != 5 {
			t.Fatalf("Delete removed %d copies (%v), want 5", n, err)
		}
		if _, _, err := nodes[7].dht.Get(t.Context(), id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
		}
		if _, err := client.dht.Put(t.Context(), blk, 0); !errors.Is(err, ErrLifetime) {
			t.Fatalf("Put with lifetime 0: %v", err)
		}
		if _, err := client.dht.Put(t.Context(), []byte{1, 2}, time.Hour); err == nil {
			t.Fatal("Put of an invalid block succeeded")
		}
	})
}

// TestListSweepsCrowdedPrefix lists a prefix that holds many more nodes
// than K: the K closest to the target hold only part of its blocks.
func TestListSweepsCrowdedPrefix(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const k, bits = 4, 2
		s := smallNet(t, 7, k, 3)
		nodes := s.addNodes(64, false)
		s.join(t.Context(), nodes, 16)
		client := s.addNodes(1, true)[0]
		s.join(t.Context(), []*simNode{client}, 1)
		target := s.randomID()
		var want []block.ID
		for range 30 {
			b, _ := indexBlock(s.rng, target, bits)
			if _, err := client.dht.Put(t.Context(), b, time.Hour); err != nil {
				t.Fatal(err)
			}
			want = append(want, block.Sum(b))
		}
		slices.SortFunc(want, func(a, b block.ID) int { return compareDistance(a, b, block.ID{}) })

		nearTarget := 0
		for _, id := range want {
			for _, n := range s.live() {
				if slices.Contains(trueClosest(s.live(), target, k), n.dht.ID()) {
					if _, err := n.store.Stat(t.Context(), id); err == nil {
						nearTarget++
						break
					}
				}
			}
		}
		if nearTarget == len(want) {
			t.Fatal("the K closest to the target hold every block: the test does not need a sweep")
		}

		entries, err := client.dht.List(t.Context(), target, bits, time.Unix(0, 0))
		if err != nil {
			t.Fatal(err)
		}
		got := make([]block.ID, len(entries))
		for i, e := range entries {
			got[i] = e.ID
		}
		if !slices.Equal(got, want) {
			t.Fatalf("List found %d of %d blocks (the K closest alone hold %d)", len(got), len(want), nearTarget)
		}
		// since after every store: nothing.
		later, err := client.dht.List(t.Context(), target, bits, time.Now().Add(time.Second))
		if err != nil || len(later) != 0 {
			t.Fatalf("List since now: %d entries (%v)", len(later), err)
		}
		if _, err := client.dht.List(t.Context(), target, 256, time.Unix(0, 0)); err == nil {
			t.Fatal("List accepted 256 bits, which LIST cannot carry")
		}
	})
}

// TestRepublishPassesOnRemainingLifetime kills every holder but one; its
// republish reaches the new closest nodes with the remaining lifetime.
func TestRepublishPassesOnRemainingLifetime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const k = 3
		s := smallNet(t, 8, k, 3)
		nodes := s.addNodes(20, false)
		s.join(t.Context(), nodes, 10)
		blk := s.dataBlock()
		id := block.Sum(blk)
		if _, err := nodes[0].dht.Put(t.Context(), blk, 6*time.Hour); err != nil {
			t.Fatal(err)
		}
		expires := time.Now().Add(6 * time.Hour)
		var keeper *simNode
		for _, n := range s.live() {
			if _, err := n.store.Stat(t.Context(), id); err == nil {
				if keeper == nil {
					keeper = n
				} else {
					s.kill(n)
				}
			}
		}
		// Too early: nothing is due.
		if n, err := keeper.dht.Republish(t.Context()); n != 0 || err != nil {
			t.Fatalf("republished %d blocks before the interval (%v)", n, err)
		}
		time.Sleep(RepublishInterval * 11 / 10)
		if n, err := keeper.dht.Republish(t.Context()); n != 1 || err != nil {
			t.Fatalf("republished %d blocks (%v), want 1", n, err)
		}
		for _, want := range trueClosest(s.live(), id, k) {
			for _, n := range s.live() {
				if n.dht.ID() != want {
					continue
				}
				m, err := n.store.Stat(t.Context(), id)
				if err != nil {
					t.Fatalf("%v, one of the %d closest live nodes, lacks the block", want.Short(), k)
				}
				if d := m.Expires.Sub(expires); d > time.Second || d < -time.Second {
					t.Fatalf("republished copy expires at %v, want the original %v", m.Expires, expires)
				}
			}
		}
	})
}

func TestBootstrapFromSavedContacts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := smallNet(t, 9, 5, 3)
		nodes := s.addNodes(25, false)
		s.join(t.Context(), nodes, 5)
		saved, err := nodes[3].dht.SaveContacts()
		if err != nil {
			t.Fatal(err)
		}
		cs, err := DecodeContacts(saved)
		if err != nil || len(cs) != nodes[3].dht.Size() {
			t.Fatalf("decoded %d contacts (%v), table holds %d", len(cs), err, nodes[3].dht.Size())
		}
		// A restart: the same identity on a fresh endpoint and table.
		s.kill(nodes[3])
		again := s.add(nodes[3].ident, false)
		contacts := make([]transport.Contact, len(cs))
		for i, c := range cs {
			contacts[i] = c.Contact
		}
		if err := again.dht.Bootstrap(t.Context(), contacts); err != nil {
			t.Fatal(err)
		}
		target := s.randomID()
		got, _, err := again.dht.Lookup(t.Context(), target)
		if err != nil {
			t.Fatal(err)
		}
		others := slices.DeleteFunc(s.live(), func(n *simNode) bool { return n == again })
		if !slices.Equal(contactIDs(got), trueClosest(others, target, 5)) {
			t.Fatal("the restarted node's lookup is not exact")
		}
	})
}

func TestBootstrapThroughAddressOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := smallNet(t, 10, 5, 3)
		nodes := s.addNodes(6, false)
		s.join(t.Context(), nodes[:5], 5)
		// The node knows only an address; the handshake tells who it is.
		if err := nodes[5].dht.Bootstrap(t.Context(), []transport.Contact{{Addr: nodes[0].ep.LocalAddr()}}); err != nil {
			t.Fatal(err)
		}
		if nodes[5].dht.Size() < 4 {
			t.Fatalf("table of %d after bootstrap", nodes[5].dht.Size())
		}
		obs := nodes[5].dht.ObservedAddrs()
		if len(obs) != 1 || obs[0].Addr != nodes[5].ep.LocalAddr() || obs[0].Reporters != 1 {
			t.Fatalf("observed addresses %+v, want the own address from one peer", obs)
		}
		dead := s.addNodes(1, false)[0]
		s.kill(dead)
		if err := dead.dht.Bootstrap(t.Context(), []transport.Contact{nodes[0].contact()}); err == nil {
			t.Fatal("a closed node bootstrapped")
		}
		lonely := s.addNodes(1, false)[0]
		if err := lonely.dht.Bootstrap(t.Context(), []transport.Contact{dead.contact()}); !errors.Is(err, ErrNoContacts) {
			t.Fatalf("bootstrap through a dead contact: %v, want ErrNoContacts", err)
		}
	})
}

func TestCheckLivenessEvictsDeadContact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := smallNet(t, 11, 1, 3) // K=1: one contact per bucket
		nodes := s.addNodes(12, false)
		a := nodes[0]
		// Two nodes in the same bucket of a.
		var b, c *simNode
		for _, x := range nodes[1:] {
			for _, y := range nodes[1:] {
				if x != y && a.dht.table.bucketIndex(x.dht.ID()) == a.dht.table.bucketIndex(y.dht.ID()) {
					b, c = x, y
				}
			}
		}
		if b == nil {
			t.Fatal("no two nodes share a bucket; pick another seed")
		}
		a.dht.table.seen(b.contact(), time.Now())
		a.dht.table.seen(c.contact(), time.Now()) // waits in the cache
		if ids := contactIDs(a.dht.Closest(b.dht.ID(), 5)); !slices.Equal(ids, []block.ID{b.dht.ID()}) {
			t.Fatalf("table %v, want only b", ids)
		}
		if n := a.dht.CheckLiveness(t.Context()); n != 0 {
			t.Fatalf("evicted %d live contacts", n)
		}
		a.dht.table.seen(c.contact(), time.Now()) // asks for another check
		s.kill(b)
		if n := a.dht.CheckLiveness(t.Context()); n != 1 {
			t.Fatalf("evicted %d, want the dead contact", n)
		}
		if ids := contactIDs(a.dht.Closest(b.dht.ID(), 5)); !slices.Equal(ids, []block.ID{c.dht.ID()}) {
			t.Fatalf("table %v, want c in b's place", ids)
		}
	})
}

func TestRefreshLooksUpStaleBuckets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := smallNet(t, 12, 4, 3)
		nodes := s.addNodes(30, false)
		s.join(t.Context(), nodes, 10)
		n := nodes[5]
		before := n.dht.Stats().Lookups
		if err := n.dht.Refresh(t.Context()); err != nil {
			t.Fatal(err)
		}
		fresh := n.dht.Stats().Lookups - before
		time.Sleep(DefaultRefreshInterval + time.Minute)
		before = n.dht.Stats().Lookups
		if err := n.dht.Refresh(t.Context()); err != nil {
			t.Fatal(err)
		}
		stale := n.dht.Stats().Lookups - before
		if stale == 0 || stale <= fresh {
			t.Fatalf("Refresh looked up %d buckets after an hour, %d right after joining", stale, fresh)
		}
	})
}

func TestLookupStopsWhenCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSimNet(t, 13, transport.MemConfig{DialTimeout: time.Minute})
		nodes := s.addNodes(6, false)
		meshSeed(nodes)
		for _, n := range nodes[1:] {
			s.kill(n) // requests to them hang until the dial timeout
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start := time.Now()
		_, _, err := nodes[0].dht.Lookup(ctx, s.randomID())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want the context's error", err)
		}
		if waited := time.Since(start); waited != time.Second {
			t.Fatalf("Lookup returned after %v, want at the 1 s cancellation", waited)
		}
		// Abandoned requests are not failures: the table keeps them.
		if nodes[0].dht.Size() != 5 {
			t.Fatalf("table of %d after a cancelled lookup, want 5", nodes[0].dht.Size())
		}
	})
}

// TestListDropsANodeThatNeverStopsListing: one node among those listed
// answers every LIST page with made-up entries and "more". Its entries
// are dropped and the List stays complete: one liar must not flood a
// recipient with fake IDs nor make its fetch fail.
func TestListDropsANodeThatNeverStopsListing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const k, bits = 8, 2
		s := smallNet(t, 11, k, 3)
		nodes := s.addNodes(12, false)
		client := s.addNodes(1, true)[0]
		meshSeed(nodes)
		for _, n := range nodes {
			client.dht.table.seen(n.contact(), time.Now())
		}
		target := s.randomID()
		b, _ := indexBlock(s.rng, target, bits)
		if _, err := client.dht.Put(t.Context(), b, time.Hour); err != nil {
			t.Fatal(err)
		}
		liarNode := trueClosestNode(nodes, target)
		var made int
		liarNode.ep.SetHandler(func(ctx context.Context, from transport.Peer, req []byte) []byte {
			m, err := Decode(req)
			l, ok := m.(List)
			if err != nil || !ok {
				return liarNode.dht.Handle(ctx, from, req)
			}
			resp := Listed{More: true}
			for range 4 {
				made++
				id := target
				id[31], id[30], id[29] = byte(made), byte(made>>8), byte(made>>16)
				if l.HasAfter && !block.Less(l.After, id) {
					continue
				}
				resp.Entries = append(resp.Entries, ListedEntry{ID: id, StoredAt: uint64(time.Now().Unix())})
			}
			out, _ := Encode(resp)
			return out
		})
		entries, err := client.dht.List(t.Context(), target, bits, time.Unix(0, 0))
		if err != nil {
			t.Fatalf("one endless lister made the List fail: %v", err)
		}
		if len(entries) != 1 || entries[0].ID != block.Sum(b) {
			t.Fatalf("List returned %d entries (the liar made %d), want only the real block", len(entries), made)
		}
		if made < maxListPages {
			t.Fatalf("the liar was asked for %d entries: the test did not reach the page limit", made)
		}
	})
}

func trueClosestNode(nodes []*simNode, target block.ID) *simNode {
	best := nodes[0]
	for _, n := range nodes[1:] {
		if compareDistance(n.dht.ID(), best.dht.ID(), target) < 0 {
			best = n
		}
	}
	return best
}

func TestUsableAddrRefusesUndialableAddresses(t *testing.T) {
	for s, want := range map[string]bool{
		"192.0.2.1:4410":                true,
		"[2001:db8::1]:4410":            true,
		"[::ffff:192.0.2.1]:4410":       true,
		"0.0.0.0:4410":                  false,
		"[::]:4410":                     false,
		"[::ffff:0.0.0.0]:4410":         false, // mapped unspecified
		"255.255.255.255:4410":          false,
		"[::ffff:255.255.255.255]:4410": false,
		"224.0.0.1:4410":                false,
		"192.0.2.1:0":                   false,
	} {
		if got := usableAddr(netip.MustParseAddrPort(s)); got != want {
			t.Errorf("usableAddr(%s) = %v, want %v", s, got, want)
		}
	}
}
