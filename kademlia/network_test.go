package kademlia_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/blockstore"
	"github.com/flowmail/flowmail/kademlia"
	"github.com/flowmail/flowmail/kademlia/kadsim"
	"github.com/flowmail/flowmail/transport"
)

// meshSeed gives every node every other node, directly in the tables, so
// a test starts from a known state without bootstrap traffic.
func meshSeed(nodes []*kadsim.Node) {
	for _, a := range nodes {
		for _, b := range nodes {
			kademlia.Seen(a.DHT, b.Contact(), time.Now())
		}
	}
}

func smallNet(t *testing.T, seed uint64, k, alpha int) *kadsim.Net {
	s := kadsim.New(t, seed, transport.MemConfig{Latency: 5 * time.Millisecond, Jitter: 20 * time.Millisecond, DialTimeout: time.Second})
	s.Tune = func(c *kademlia.Config) {
		c.K, c.Alpha = k, alpha
		c.BucketIPLimit, c.TableIPLimit = -1, -1
	}
	return s
}

// liveHolders returns the live nodes of s that hold id, closest first.
func liveHolders(ctx context.Context, s *kadsim.Net, id block.ID) []block.ID {
	var out []block.ID
	for _, n := range s.Live() {
		if _, err := n.Store.Stat(ctx, id); err == nil {
			out = append(out, n.ID())
		}
	}
	slices.SortFunc(out, func(a, b block.ID) int { return kademlia.CompareDistance(a, b, id) })
	return out
}

// meshWithClient is smallNet with n full nodes that all know each other
// and a client that knows them all.
func meshWithClient(t *testing.T, seed uint64, k, n int) (*kadsim.Net, []*kadsim.Node, *kadsim.Node) {
	s := smallNet(t, seed, k, 3)
	full := s.AddNodes(n, false)
	meshSeed(full)
	client := s.AddNodes(1, true)[0]
	for _, x := range full {
		kademlia.Seen(client.DHT, x.Contact(), time.Now())
	}
	return s, full, client
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
		nodes := s.AddNodes(12, false)
		a, b, rest := nodes[0], nodes[1], nodes[1:]
		meshSeed(rest)
		for _, n := range rest {
			if n.DHT.Size() != len(rest)-1 {
				t.Fatalf("a bucket overflowed (table of %d); pick another seed", n.DHT.Size())
			}
		}
		for range 20 {
			target := s.RandomID()
			want := kadsim.TrueClosest(rest, target, k)
			if slices.Contains(want, b.DHT.ID()) {
				continue // B itself among the closest: a shorter path
			}
			// A forgets what its last lookup taught it.
			kademlia.ForgetContacts(a.DHT)
			kademlia.Seen(a.DHT, b.Contact(), time.Now())
			got, st, err := a.DHT.Lookup(t.Context(), target)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(kadsim.ContactIDs(got), want) {
				t.Fatalf("lookup found %v, want %v", kadsim.ContactIDs(got), want)
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
		s := smallNet(t, 2, k, 3)
		nodes := s.AddNodes(40, false)
		meshSeed(nodes)
		from := nodes[0]
		// The two that die and the two after them are in from's table.
		target, held := targetHeldBy(t, s, from, nodes[1:], k)
		closest := kadsim.TrueClosest(nodes[1:], target, 2*k)
		if !slices.Equal(held, closest[:k]) {
			t.Fatal("TrueClosest disagrees with itself")
		}
		// The two closest die; the lookup must answer with the next live
		// ones.
		for _, n := range nodes {
			if n.DHT.ID() == closest[0] || n.DHT.ID() == closest[1] {
				s.Kill(n)
			}
		}
		got, st, err := from.DHT.Lookup(t.Context(), target)
		if err != nil {
			t.Fatal(err)
		}
		// Every peer still names the dead nodes among its K closest, so
		// the lookup may hear of fewer than K live ones; those it returns
		// are the closest live nodes, in order.
		if n := len(got); n < k-2 || !slices.Equal(kadsim.ContactIDs(got), closest[2:2+n]) {
			t.Fatalf("lookup found %v, want a prefix of the live %v", kadsim.ContactIDs(got), closest[2:2+k])
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
		nodes := s.AddNodes(10, false)
		meshSeed(nodes)
		got, _, err := nodes[0].DHT.Lookup(t.Context(), nodes[0].DHT.ID())
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(kadsim.ContactIDs(got), nodes[0].DHT.ID()) {
			t.Fatal("a lookup returned the node that ran it")
		}
	})
}

func TestLookupWithEmptyTableFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := smallNet(t, 4, 4, 3)
		n := s.AddNodes(1, false)[0]
		if _, _, err := n.DHT.Lookup(t.Context(), kademlia.TestID(1)); !errors.Is(err, kademlia.ErrNoContacts) {
			t.Fatalf("got %v, want ErrNoContacts", err)
		}
	})
}

// liar answers FIND_BLOCK with a valid block that is not the one asked
// for, and everything else honestly.
func liar(d *kademlia.DHT, fake []byte) transport.Handler {
	return func(ctx context.Context, from transport.Peer, req []byte) []byte {
		if m, err := kademlia.Decode(req); err == nil {
			if _, ok := m.(kademlia.FindBlock); ok {
				b, _ := kademlia.Encode(kademlia.BlockReply{Lifetime: 60, Block: fake})
				return b
			}
		}
		return d.Handle(ctx, from, req)
	}
}

func TestGetDiscardsBlockWhoseIDDoesNotMatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := smallNet(t, 5, 20, 1) // alpha 1: requests go in distance order
		nodes := s.AddNodes(8, false)
		client := s.AddNodes(1, true)[0]
		meshSeed(nodes)
		for _, n := range nodes {
			kademlia.Seen(client.DHT, n.Contact(), time.Now())
		}
		// A block whose closest node is the liar, held only by the
		// farthest node.
		liarNode := nodes[0]
		var blk []byte
		var order []block.ID
		for i := 0; ; i++ {
			blk = block.Data{Payload: []byte{byte(i), byte(i >> 8), 1}}.Encode()
			if order = kadsim.TrueClosest(nodes, block.Sum(blk), len(nodes)); order[0] == liarNode.DHT.ID() {
				break
			}
		}
		holder := nodes[slices.IndexFunc(nodes, func(n *kadsim.Node) bool { return n.DHT.ID() == order[len(order)-1] })]
		id := block.Sum(blk)
		if _, err := holder.Store.Put(t.Context(), blk, time.Hour, blockstore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		liarNode.EP.SetHandler(liar(liarNode.DHT, block.Data{Payload: []byte("something else")}.Encode()))

		got, lifetime, err := client.DHT.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, blk) || lifetime <= 0 || lifetime > time.Hour {
			t.Fatalf("Get returned %d bytes with lifetime %v", len(got), lifetime)
		}
		if slices.Contains(kadsim.ContactIDs(client.DHT.Closest(id, 20)), liarNode.DHT.ID()) {
			t.Fatal("the liar stayed in the routing table")
		}

		// With only the liar answering BLOCK, Get finds nothing.
		kademlia.Seen(client.DHT, liarNode.Contact(), time.Now())
		other := block.Data{Payload: []byte("nobody has this")}.Encode()
		if _, _, err := client.DHT.Get(t.Context(), block.Sum(other)); !errors.Is(err, kademlia.ErrNotFound) {
			t.Fatalf("got %v, want ErrNotFound", err)
		}
	})
}

func TestPutGetDeleteOnNetwork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := smallNet(t, 6, 5, 3)
		nodes := s.AddNodes(30, false)
		s.Join(t.Context(), nodes, 10)
		client := s.AddNodes(1, true)[0]
		s.Join(t.Context(), []*kadsim.Node{client}, 1)

		blk, pre := kademlia.DataBlockWithDeletion("a shard that will be deleted")
		id := block.Sum(blk)
		// A data block goes to the R closest (K = 5 here is more).
		r := block.ShardReplicas
		stored, err := client.DHT.Put(t.Context(), blk, time.Hour)
		if err != nil || stored != r {
			t.Fatalf("Put stored at %d nodes (%v), want %d", stored, err, r)
		}
		holders := 0
		for _, n := range s.Live() {
			if _, err := n.Store.Stat(t.Context(), id); err == nil {
				holders++
				if !slices.Contains(kadsim.TrueClosest(s.Live(), id, r), n.DHT.ID()) {
					t.Errorf("%v holds the block but is not among the %d closest", n.DHT.ID().Short(), r)
				}
			}
		}
		if holders != r {
			t.Fatalf("%d nodes hold the block, want %d", holders, r)
		}
		got, _, err := nodes[7].DHT.Get(t.Context(), id)
		if err != nil || !bytes.Equal(got, blk) {
			t.Fatalf("Get: %v", err)
		}
		if n, err := client.DHT.Delete(t.Context(), id, [32]byte{1}); err == nil || n != 0 {
			t.Fatalf("Delete with a wrong preimage deleted %d (%v)", n, err)
		}
		if n, err := client.DHT.Delete(t.Context(), id, pre); err != nil || n != r {
			t.Fatalf("Delete removed %d copies (%v), want %d", n, err, r)
		}
		if _, _, err := nodes[7].DHT.Get(t.Context(), id); !errors.Is(err, kademlia.ErrNotFound) {
			t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
		}
		if _, err := client.DHT.Put(t.Context(), blk, 0); !errors.Is(err, kademlia.ErrLifetime) {
			t.Fatalf("Put with lifetime 0: %v", err)
		}
		if _, err := client.DHT.Put(t.Context(), []byte{1, 2}, time.Hour); err == nil {
			t.Fatal("Put of an invalid block succeeded")
		}
	})
}

// TestPutInASmallNetworkIsAStoreLookup: a client that knows every node
// of a small network puts a data block with R STOREs and no FIND_NODE (a
// store lookup, docs/PROTOCOL.md 9.7), at the R closest; one that does
// not know the closest node learns of it from the STORED answers and
// stores there too; a block held by K takes K STOREs alone.
func TestPutInASmallNetworkIsAStoreLookup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		s, _, client := meshWithClient(t, 11, kademlia.K, 12)
		r := block.ShardReplicas
		holders := func(id block.ID) []block.ID { return liveHolders(ctx, s, id) }
		blk := block.Data{Payload: []byte("a shard in a small network")}.Encode()
		id := block.Sum(blk)
		before := client.DHT.Stats().RequestsSent
		stored, err := client.DHT.Put(ctx, blk, time.Hour)
		if sent := client.DHT.Stats().RequestsSent - before; err != nil || stored != r || sent != uint64(r) {
			t.Fatalf("Put stored at %d nodes (%v) with %d requests, want %d and %d STOREs alone", stored, err, sent, r, r)
		}
		got, want := holders(id), kadsim.TrueClosest(s.Live(), id, r)
		if !slices.Equal(got, want) {
			t.Fatalf("held by %v, want the %d closest %v", got, r, want)
		}

		blk = block.Data{Payload: []byte("a shard whose closest node the client forgot")}.Encode()
		id = block.Sum(blk)
		want = kadsim.TrueClosest(s.Live(), id, r)
		kademlia.Forget(client.DHT, want[0])
		if _, err := client.DHT.Put(ctx, blk, time.Hour); err != nil {
			t.Fatal(err)
		}
		got = holders(id)
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Fatalf("held by %v, which misses %v of the %d closest %v", got, w.Short(), r, want)
			}
		}
		if len(got) > r+1 {
			t.Fatalf("held by %d nodes, want at most one beyond the %d closest", len(got), r)
		}

		// PutKnown, given the ID, places the block as Put does.
		blk = block.Data{Payload: []byte("a shard whose ID its builder hashed")}.Encode()
		id = block.Sum(blk)
		if stored, err := client.DHT.PutKnown(ctx, id, blk, time.Hour); err != nil || stored != r {
			t.Fatalf("PutKnown stored at %d nodes (%v), want %d", stored, err, r)
		}
		got, want = holders(id), kadsim.TrueClosest(s.Live(), id, r)
		if !slices.Equal(got, want) {
			t.Fatalf("PutKnown: held by %v, want the %d closest %v", got, r, want)
		}

		// A block held by K (here all 12 nodes, fewer than K): as many
		// STOREs and nothing else.
		idx, _ := kademlia.IndexBlock(s.Rand, s.RandomID(), 0)
		before = client.DHT.Stats().RequestsSent
		stored, err = client.DHT.Put(ctx, idx, time.Hour)
		live := len(s.Live())
		if sent := client.DHT.Stats().RequestsSent - before; err != nil || stored != live || sent != uint64(live) {
			t.Fatalf("Put of an index block stored at %d nodes (%v) with %d requests, want all %d with as many STOREs", stored, err, sent, live)
		}
		if got := holders(block.Sum(idx)); len(got) != live {
			t.Fatalf("the index block is held by %d nodes, want %d", len(got), live)
		}
	})
}

// TestStoreLookupBoundsWhatLiarsCost: holders that answer STORED with
// made-up contacts closer than anyone cannot make a put upload the block
// more than 4·2R times (docs/PROTOCOL.md 9.7).
func TestStoreLookupBoundsWhatLiarsCost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		s, _, client := meshWithClient(t, 17, kademlia.K, 12)
		blk := block.Data{Payload: []byte("a shard liars are asked to hold")}.Encode()
		id := block.Sum(blk)
		var mu sync.Mutex // the liars answer side by side
		made := 0
		for _, liarID := range kadsim.TrueClosest(s.Live(), id, block.ShardReplicas) {
			for _, n := range s.Live() {
				if n.ID() != liarID {
					continue
				}
				n.EP.SetHandler(func(ctx context.Context, from transport.Peer, req []byte) []byte {
					if m, err := kademlia.Decode(req); err == nil {
						if _, ok := m.(kademlia.Store); ok {
							var cs []transport.Contact
							mu.Lock()
							for range kademlia.MaxNodes {
								fake := id
								made++
								fake[30], fake[31] = byte(made>>8), byte(made)
								cs = append(cs, transport.Contact{ID: fake, Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 99, byte(made >> 8), byte(made)}), 4433)})
							}
							mu.Unlock()
							b, _ := kademlia.Encode(kademlia.Stored{Contacts: cs})
							return b
						}
					}
					return n.DHT.Handle(ctx, from, req)
				})
			}
		}
		before := client.DHT.Stats().RequestsSent
		if _, err := client.DHT.Put(ctx, blk, time.Hour); err != nil {
			t.Fatal(err)
		}
		sent := client.DHT.Stats().RequestsSent - before
		if limit := uint64(4 * 2 * block.ShardReplicas); sent > limit {
			t.Fatalf("the put sent %d STOREs after liars named made-up contacts, want at most %d", sent, limit)
		}
		mu.Lock()
		defer mu.Unlock()
		t.Logf("liars named %d made-up contacts; the put sent %d STOREs", made, sent)
	})
}

// TestPutDataManyAsksEachHolderOnce: a mail's shards go to each holder
// the client knows in one STORE_MANY, each to its R closest nodes; a
// shard whose closest node the client forgot is put as Put puts it, and
// reaches that node too (docs/PROTOCOL.md 9.7).
func TestPutDataManyAsksEachHolderOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		s, full, client := meshWithClient(t, 17, kademlia.K, 10)
		r := block.ShardReplicas
		held := func(id block.ID) []block.ID { return liveHolders(ctx, s, id) }
		shards := func(n int, what string) ([]block.ID, [][]byte) {
			ids, bs := make([]block.ID, n), make([][]byte, n)
			for i := range n {
				bs[i] = block.Data{Payload: fmt.Appendf(nil, "%s %d", what, i)}.Encode()
				ids[i] = block.Sum(bs[i])
			}
			return ids, bs
		}
		ids, bs := shards(30, "shard")
		calls := make([]int, len(ids))
		var mu sync.Mutex
		before := client.DHT.Stats().RequestsSent
		copies, err := client.DHT.PutDataMany(ctx, ids, bs, time.Hour, 4, func(i int) {
			mu.Lock()
			defer mu.Unlock()
			calls[i]++
		})
		sent := client.DHT.Stats().RequestsSent - before
		if err != nil {
			t.Fatal(err)
		}
		if sent > uint64(len(full)) {
			t.Errorf("%d requests to store %d shards on %d nodes, want at most one per node", sent, len(ids), len(full))
		}
		for i, id := range ids {
			if copies[i] != r || calls[i] != 1 {
				t.Errorf("shard %d: %d copies, done called %d times; want %d and once", i, copies[i], calls[i], r)
			}
			if got, want := held(id), kadsim.TrueClosest(s.Live(), id, r); !slices.Equal(got, want) {
				t.Errorf("shard %d held by %v, want the %d closest %v", i, got, r, want)
			}
		}
		t.Logf("%d shards, %d copies, stored with %d requests", len(ids), len(ids)*r, sent)

		// The client forgets the closest node of the first shard: that
		// shard's holders name it, and the shard goes there too.
		ids, bs = shards(5, "another shard")
		want := kadsim.TrueClosest(s.Live(), ids[0], r)
		kademlia.Forget(client.DHT, want[0])
		if _, err := client.DHT.PutDataMany(ctx, ids, bs, time.Hour, 4, nil); err != nil {
			t.Fatal(err)
		}
		got := held(ids[0])
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Fatalf("held by %v, which misses %v of the %d closest %v", got, w.Short(), r, want)
			}
		}
		if len(got) > r+1 {
			t.Fatalf("held by %d nodes, want at most one beyond the %d closest", len(got), r)
		}
	})
}

// TestDeleteManyAsksEachHolderOnce: a mail's index block and shards,
// got lately or not, are deleted with one DELETE_MANY per holder where
// the client knows the holders, each with its own preimage, and no copy
// is left (docs/PROTOCOL.md 8).
func TestDeleteManyAsksEachHolderOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		s, full, client := meshWithClient(t, 13, kademlia.K, 10)
		r := block.ShardReplicas
		var pre [32]byte
		copy(pre[:], "the shards of one mail")
		h := block.Header{HasDeletion: true, DeletionHash: block.DeletionHash(pre)}
		var ids []block.ID
		for i := range 30 {
			blk := block.Data{Header: h, Payload: fmt.Appendf(nil, "shard %d", i)}.Encode()
			if _, err := client.DHT.Put(ctx, blk, time.Hour); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, block.Sum(blk))
		}
		for _, id := range ids[:15] {
			if _, _, err := client.DHT.Get(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		index, indexPre := kademlia.IndexBlock(s.Rand, s.RandomID(), 0)
		if _, err := client.DHT.Put(ctx, index, time.Hour); err != nil {
			t.Fatal(err)
		}
		if _, _, err := client.DHT.Get(ctx, block.Sum(index)); err != nil {
			t.Fatal(err)
		}
		targets := func(ids []block.ID) []kademlia.DeleteTarget {
			ts := []kademlia.DeleteTarget{{ID: block.Sum(index), Preimage: indexPre, HeldByK: true}}
			for _, id := range ids {
				ts = append(ts, kademlia.DeleteTarget{ID: id, Preimage: pre})
			}
			return ts
		}
		before := client.DHT.Stats().RequestsSent
		deleted, err := client.DHT.DeleteMany(ctx, targets(ids))
		sent := client.DHT.Stats().RequestsSent - before
		if err != nil {
			t.Fatal(err)
		}
		if deleted[0] != len(full) {
			t.Errorf("index block: %d copies deleted, want all %d", deleted[0], len(full))
		}
		for i, n := range deleted[1:] {
			if n != r {
				t.Errorf("shard %d: %d copies deleted, want %d", i, n, r)
			}
		}
		if sent > uint64(len(full)) {
			t.Errorf("%d requests to delete %d shards held by %d nodes, want at most one per node", sent, len(ids), len(full))
		}
		for _, n := range s.Live() {
			for _, id := range append(ids, block.Sum(index)) {
				if _, err := n.Store.Stat(ctx, id); err == nil {
					t.Fatalf("%v still holds %v", n.ID().Short(), id.Short())
				}
			}
		}
		t.Logf("an index block at %d nodes and %d shards, %d copies, deleted with %d requests", len(full), len(ids), len(ids)*r, sent)

		// A holder that is gone fails its DELETE_MANY: its shards go on
		// to delete lookups, and every live copy goes.
		ids = ids[:0]
		for i := range 5 {
			blk := block.Data{Header: h, Payload: fmt.Appendf(nil, "another shard %d", i)}.Encode()
			if _, err := client.DHT.Put(ctx, blk, time.Hour); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, block.Sum(blk))
		}
		gone := kadsim.TrueClosest(s.Live(), ids[0], 1)[0]
		for _, n := range s.Live() {
			if n.ID() == gone {
				s.Kill(n)
			}
		}
		start := time.Now()
		ts := targets(ids)[1:]
		if _, err := client.DHT.DeleteMany(ctx, ts); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took >= time.Second {
			t.Errorf("deleting with a holder gone took %v: it waited for the dial timeout (1 s)", took)
		}
		for _, n := range s.Live() {
			for _, id := range ids {
				if _, err := n.Store.Stat(ctx, id); err == nil {
					t.Fatalf("%v still holds %v after its holder %v left", n.ID().Short(), id.Short(), gone.Short())
				}
			}
		}
	})
}

// TestListInASmallNetworkTakesItsNodesFromTheTable: a client that knows
// every node lists at the K closest without looking them up (spec 8).
func TestListInASmallNetworkTakesItsNodesFromTheTable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		s, full, client := meshWithClient(t, 19, kademlia.K, 12)
		target := s.RandomID()
		idx, _ := kademlia.IndexBlock(s.Rand, target, 8)
		if _, err := client.DHT.Put(ctx, idx, time.Hour); err != nil {
			t.Fatal(err)
		}
		before := client.DHT.Stats().RequestsSent
		got, err := client.DHT.List(ctx, target, 8, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if sent := client.DHT.Stats().RequestsSent - before; sent != uint64(len(full)) {
			t.Errorf("List sent %d requests, want one LIST to each of the %d nodes and no lookup", sent, len(full))
		}
		if len(got) != 1 || got[0].ID != block.Sum(idx) {
			t.Fatalf("listed %v, want the index block %v", got, block.Sum(idx).Short())
		}
	})
}

// TestListSweepsCrowdedPrefix lists a prefix that holds many more nodes
// than K: the K closest to the target hold only part of its blocks.
func TestListSweepsCrowdedPrefix(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const k, bits = 4, 2
		s := smallNet(t, 7, k, 3)
		nodes := s.AddNodes(64, false)
		s.Join(t.Context(), nodes, 16)
		client := s.AddNodes(1, true)[0]
		s.Join(t.Context(), []*kadsim.Node{client}, 1)
		target := s.RandomID()
		var want []block.ID
		for range 30 {
			b, _ := kademlia.IndexBlock(s.Rand, target, bits)
			if _, err := client.DHT.Put(t.Context(), b, time.Hour); err != nil {
				t.Fatal(err)
			}
			want = append(want, block.Sum(b))
		}
		slices.SortFunc(want, func(a, b block.ID) int { return kademlia.CompareDistance(a, b, block.ID{}) })

		nearTarget := 0
		for _, id := range want {
			for _, n := range s.Live() {
				if slices.Contains(kadsim.TrueClosest(s.Live(), target, k), n.DHT.ID()) {
					if _, err := n.Store.Stat(t.Context(), id); err == nil {
						nearTarget++
						break
					}
				}
			}
		}
		if nearTarget == len(want) {
			t.Fatal("the K closest to the target hold every block: the test does not need a sweep")
		}

		entries, err := client.DHT.List(t.Context(), target, bits, time.Unix(0, 0))
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
		later, err := client.DHT.List(t.Context(), target, bits, time.Now().Add(time.Second))
		if err != nil || len(later) != 0 {
			t.Fatalf("List since now: %d entries (%v)", len(later), err)
		}
		if _, err := client.DHT.List(t.Context(), target, 256, time.Unix(0, 0)); err == nil {
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
		nodes := s.AddNodes(20, false)
		s.Join(t.Context(), nodes, 10)
		blk := s.DataBlock()
		id := block.Sum(blk)
		if _, err := nodes[0].DHT.Put(t.Context(), blk, 60*time.Hour); err != nil {
			t.Fatal(err)
		}
		expires := time.Now().Add(60 * time.Hour)
		var keeper *kadsim.Node
		for _, n := range s.Live() {
			if _, err := n.Store.Stat(t.Context(), id); err == nil {
				if keeper == nil {
					keeper = n
				} else {
					s.Kill(n)
				}
			}
		}
		// Too early: nothing is due.
		if n, err := keeper.DHT.Republish(t.Context()); n != 0 || err != nil {
			t.Fatalf("republished %d blocks before the interval (%v)", n, err)
		}
		// A data block's date comes after ShardRepublishInterval.
		s.Idle(t.Context(), block.ShardRepublishInterval*11/10)
		if n, err := keeper.DHT.Republish(t.Context()); n != 1 || err != nil {
			t.Fatalf("republished %d blocks (%v), want 1", n, err)
		}
		for _, want := range kadsim.TrueClosest(s.Live(), id, k) {
			for _, n := range s.Live() {
				if n.DHT.ID() != want {
					continue
				}
				m, err := n.Store.Stat(t.Context(), id)
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
		nodes := s.AddNodes(25, false)
		s.Join(t.Context(), nodes, 5)
		saved, err := nodes[3].DHT.SaveContacts()
		if err != nil {
			t.Fatal(err)
		}
		cs, err := kademlia.DecodeContacts(saved)
		if err != nil || len(cs) != nodes[3].DHT.Size() {
			t.Fatalf("decoded %d contacts (%v), table holds %d", len(cs), err, nodes[3].DHT.Size())
		}
		// A restart: the same identity on a fresh endpoint and table.
		s.Kill(nodes[3])
		again := s.Add(nodes[3].Identity(), false)
		contacts := make([]transport.Contact, len(cs))
		for i, c := range cs {
			contacts[i] = c.Contact
		}
		if err := again.DHT.Bootstrap(t.Context(), contacts); err != nil {
			t.Fatal(err)
		}
		target := s.RandomID()
		got, _, err := again.DHT.Lookup(t.Context(), target)
		if err != nil {
			t.Fatal(err)
		}
		others := slices.DeleteFunc(s.Live(), func(n *kadsim.Node) bool { return n == again })
		if !slices.Equal(kadsim.ContactIDs(got), kadsim.TrueClosest(others, target, 5)) {
			t.Fatal("the restarted node's lookup is not exact")
		}
	})
}

func TestBootstrapThroughAddressOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := smallNet(t, 10, 5, 3)
		nodes := s.AddNodes(6, false)
		s.Join(t.Context(), nodes[:5], 5)
		// The node knows only an address; the handshake tells who it is.
		if err := nodes[5].DHT.Bootstrap(t.Context(), []transport.Contact{{Addr: nodes[0].EP.LocalAddr()}}); err != nil {
			t.Fatal(err)
		}
		if nodes[5].DHT.Size() < 4 {
			t.Fatalf("table of %d after bootstrap", nodes[5].DHT.Size())
		}
		obs := nodes[5].DHT.ObservedAddrs()
		if len(obs) != 1 || obs[0].Addr != nodes[5].EP.LocalAddr() || obs[0].Reporters != 1 {
			t.Fatalf("observed addresses %+v, want the own address from one peer", obs)
		}
		dead := s.AddNodes(1, false)[0]
		s.Kill(dead)
		if err := dead.DHT.Bootstrap(t.Context(), []transport.Contact{nodes[0].Contact()}); err == nil {
			t.Fatal("a closed node bootstrapped")
		}
		lonely := s.AddNodes(1, false)[0]
		if err := lonely.DHT.Bootstrap(t.Context(), []transport.Contact{dead.Contact()}); !errors.Is(err, kademlia.ErrNoContacts) {
			t.Fatalf("bootstrap through a dead contact: %v, want ErrNoContacts", err)
		}
	})
}

func TestCheckLivenessEvictsDeadContact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := smallNet(t, 11, 1, 3) // K=1: one contact per bucket
		nodes := s.AddNodes(12, false)
		a := nodes[0]
		// Two nodes in the same bucket of a.
		var b, c *kadsim.Node
		for _, x := range nodes[1:] {
			for _, y := range nodes[1:] {
				if x != y && block.CommonPrefixLen(a.DHT.ID(), x.DHT.ID()) == block.CommonPrefixLen(a.DHT.ID(), y.DHT.ID()) {
					b, c = x, y
				}
			}
		}
		if b == nil {
			t.Fatal("no two nodes share a bucket; pick another seed")
		}
		kademlia.Seen(a.DHT, b.Contact(), time.Now())
		kademlia.Seen(a.DHT, c.Contact(), time.Now()) // waits in the cache
		if ids := kadsim.ContactIDs(a.DHT.Closest(b.DHT.ID(), 5)); !slices.Equal(ids, []block.ID{b.DHT.ID()}) {
			t.Fatalf("table %v, want only b", ids)
		}
		if n := a.DHT.CheckLiveness(t.Context()); n != 0 {
			t.Fatalf("evicted %d live contacts", n)
		}
		kademlia.Seen(a.DHT, c.Contact(), time.Now()) // asks for another check
		s.Kill(b)
		if n := a.DHT.CheckLiveness(t.Context()); n != 1 {
			t.Fatalf("evicted %d, want the dead contact", n)
		}
		if ids := kadsim.ContactIDs(a.DHT.Closest(b.DHT.ID(), 5)); !slices.Equal(ids, []block.ID{c.DHT.ID()}) {
			t.Fatalf("table %v, want c in b's place", ids)
		}
	})
}

func TestRefreshLooksUpStaleBuckets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := smallNet(t, 12, 4, 3)
		nodes := s.AddNodes(30, false)
		s.Join(t.Context(), nodes, 10)
		n := nodes[5]
		before := n.DHT.Stats().Lookups
		if err := n.DHT.Refresh(t.Context()); err != nil {
			t.Fatal(err)
		}
		fresh := n.DHT.Stats().Lookups - before
		time.Sleep(kademlia.DefaultRefreshInterval + time.Minute)
		before = n.DHT.Stats().Lookups
		if err := n.DHT.Refresh(t.Context()); err != nil {
			t.Fatal(err)
		}
		stale := n.DHT.Stats().Lookups - before
		if stale == 0 || stale <= fresh {
			t.Fatalf("Refresh looked up %d buckets after an hour, %d right after joining", stale, fresh)
		}
	})
}

func TestLookupStopsWhenCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := kadsim.New(t, 13, transport.MemConfig{DialTimeout: time.Minute})
		nodes := s.AddNodes(6, false)
		meshSeed(nodes)
		for _, n := range nodes[1:] {
			s.Kill(n) // requests to them hang until the dial timeout
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start := time.Now()
		_, _, err := nodes[0].DHT.Lookup(ctx, s.RandomID())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want the context's error", err)
		}
		if waited := time.Since(start); waited != time.Second {
			t.Fatalf("Lookup returned after %v, want at the 1 s cancellation", waited)
		}
		// Abandoned requests are not failures: the table keeps them.
		if nodes[0].DHT.Size() != 5 {
			t.Fatalf("table of %d after a cancelled lookup, want 5", nodes[0].DHT.Size())
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
		nodes := s.AddNodes(12, false)
		client := s.AddNodes(1, true)[0]
		meshSeed(nodes)
		for _, n := range nodes {
			kademlia.Seen(client.DHT, n.Contact(), time.Now())
		}
		target := s.RandomID()
		b, _ := kademlia.IndexBlock(s.Rand, target, bits)
		if _, err := client.DHT.Put(t.Context(), b, time.Hour); err != nil {
			t.Fatal(err)
		}
		liarNode := kadsim.ClosestNode(nodes, target)
		var made int
		liarNode.EP.SetHandler(func(ctx context.Context, from transport.Peer, req []byte) []byte {
			m, err := kademlia.Decode(req)
			l, ok := m.(kademlia.List)
			if err != nil || !ok {
				return liarNode.DHT.Handle(ctx, from, req)
			}
			resp := kademlia.Listed{More: true}
			for range 4 {
				made++
				id := target
				id[31], id[30], id[29] = byte(made), byte(made>>8), byte(made>>16)
				if l.HasAfter && !block.Less(l.After, id) {
					continue
				}
				resp.Entries = append(resp.Entries, kademlia.ListedEntry{ID: id, StoredAt: uint64(time.Now().Unix())})
			}
			out, _ := kademlia.Encode(resp)
			return out
		})
		entries, err := client.DHT.List(t.Context(), target, bits, time.Unix(0, 0))
		if err != nil {
			t.Fatalf("one endless lister made the List fail: %v", err)
		}
		if len(entries) != 1 || entries[0].ID != block.Sum(b) {
			t.Fatalf("List returned %d entries (the liar made %d), want only the real block", len(entries), made)
		}
		if made < kademlia.MaxListPages {
			t.Fatalf("the liar was asked for %d entries: the test did not reach the page limit", made)
		}
	})
}

// askNodes sends FIND_NODE of target from r to a and returns the IDs of
// the answer.
func askNodes(t *testing.T, r, a *kadsim.Node, target block.ID) []block.ID {
	t.Helper()
	req, err := kademlia.Encode(kademlia.FindNode{Target: target})
	if err != nil {
		t.Fatal(err)
	}
	raw, _, err := r.EP.Request(t.Context(), a.Contact(), req)
	if err != nil {
		t.Fatal(err)
	}
	m, err := kademlia.Decode(raw)
	nodes, ok := m.(kademlia.Nodes)
	if err != nil || !ok {
		t.Fatalf("FIND_NODE answered %v (%v)", m, err)
	}
	return kadsim.ContactIDs(nodes.Contacts)
}

// TestNodesNameOnlyContactsVerifiedRecently: A holds B and C, and C
// dies. Left alone for longer than ContactFreshness, A names neither in
// NODES answers; with its liveness loop running (CheckLiveness every
// minute), it revalidates both: B answers and is named, C fails and is
// not.
func TestNodesNameOnlyContactsVerifiedRecently(t *testing.T) {
	for _, loop := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			s := smallNet(t, 21, 4, 3)
			nodes := s.AddNodes(4, false)
			a, b, c, r := nodes[0], nodes[1], nodes[2], nodes[3]
			kademlia.Seen(a.DHT, b.Contact(), time.Now())
			kademlia.Seen(a.DHT, c.Contact(), time.Now())
			if got := askNodes(t, r, a, b.ID()); len(got) != 2 {
				t.Fatalf("fresh: A named %d contacts, want B and C (never R, the requester)", len(got))
			}
			s.Kill(c)
			if loop {
				s.Idle(t.Context(), kademlia.ContactFreshness+time.Minute)
			} else {
				time.Sleep(kademlia.ContactFreshness + time.Minute)
			}
			got := askNodes(t, r, a, b.ID())
			switch {
			case slices.Contains(got, c.ID()):
				t.Errorf("liveness loop %v: A names the dead C", loop)
			case loop && !slices.Contains(got, b.ID()):
				t.Errorf("with its liveness loop A does not name the live B: %v", got)
			case !loop && len(got) != 0:
				t.Errorf("without revalidation A names %v, not verified for %v", got, kademlia.ContactFreshness+time.Minute)
			}
		})
	}
}

// namesAt makes n answer every FIND_NODE with one contact: id at addr.
func namesAt(n *kadsim.Node, id block.ID, addr netip.AddrPort) {
	n.EP.SetHandler(func(ctx context.Context, from transport.Peer, req []byte) []byte {
		if m, err := kademlia.Decode(req); err == nil {
			if _, ok := m.(kademlia.FindNode); ok {
				out, _ := kademlia.Encode(kademlia.Nodes{Contacts: []transport.Contact{{ID: id, Addr: addr}}})
				return out
			}
		}
		return n.DHT.Handle(ctx, from, req)
	})
}

// TestLookupDoesNotChargeAContactForAnAddressItWasNotAt: A holds H in
// its routing table at H's verified address; a liar's NODES answers pair
// H's ID with a dead address. Lookups ask H where the table has it, and
// H keeps a clean record and its place in A's NODES answers.
func TestLookupDoesNotChargeAContactForAnAddressItWasNotAt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := smallNet(t, 8, 2, 3)
		nodes := s.AddNodes(5, false)
		a, liar, silent, h, r := nodes[0], nodes[1], nodes[2], nodes[3], nodes[4]
		for _, n := range nodes[1:4] {
			kademlia.Seen(a.DHT, n.Contact(), time.Now())
		}
		// A target whose two closest are the liar and the silent node, so
		// H is first heard of in the liar's answer.
		var target block.ID
		for {
			target = s.RandomID()
			if kadsim.TrueClosest(nodes[1:4], target, 3)[2] == h.ID() {
				break
			}
		}
		namesAt(liar, h.ID(), netip.MustParseAddrPort("10.254.254.254:9"))
		s.Kill(silent)
		for range 3 {
			if _, _, err := a.DHT.Lookup(t.Context(), target); err != nil {
				t.Fatal(err)
			}
		}
		i := slices.IndexFunc(a.DHT.Contacts(), func(c kademlia.ContactInfo) bool { return c.ID == h.ID() })
		if i < 0 {
			t.Fatal("H was evicted for failures at an address a liar made up")
		}
		if f := a.DHT.Contacts()[i].Failures; f != 0 {
			t.Errorf("H was charged %d failures at an address a liar made up", f)
		}
		if !slices.Contains(askNodes(t, r, a, h.ID()), h.ID()) {
			t.Error("A's NODES answers leave H out")
		}
	})
}

// TestLookupTriesTheSecondAddressHeard: A does not know H. A liar names
// H at the address of another node (so the request fails on the wrong
// key) and answers before an honest node names H at its real address.
// Whether the honest answer comes before or after the failure, the
// lookup asks H again at the real address and finds it; the liar leaves
// A's routing table.
func TestLookupTriesTheSecondAddressHeard(t *testing.T) {
	tests := map[string]struct {
		honest, wrong time.Duration // one-way delays from A
	}{
		"second address known when the first fails":   {honest: 5 * time.Millisecond, wrong: 20 * time.Millisecond},
		"second address heard after the first failed": {honest: 50 * time.Millisecond, wrong: 5 * time.Millisecond},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var mu sync.Mutex
				delays := make(map[[2]netip.AddrPort]time.Duration)
				latency := func(x, y netip.AddrPort) time.Duration {
					mu.Lock()
					defer mu.Unlock()
					if d, ok := delays[[2]netip.AddrPort{x, y}]; ok {
						return d
					}
					return time.Millisecond
				}
				s := kadsim.New(t, 9, transport.MemConfig{LinkLatency: latency, DialTimeout: time.Second})
				s.Tune = func(c *kademlia.Config) {
					c.K, c.Alpha = 2, 3
					c.BucketIPLimit, c.TableIPLimit = -1, -1
				}
				nodes := s.AddNodes(5, false)
				a, liar, honest, h, other := nodes[0], nodes[1], nodes[2], nodes[3], nodes[4]
				mu.Lock()
				for n, d := range map[*kadsim.Node]time.Duration{honest: tc.honest, other: tc.wrong} {
					x, y := a.EP.LocalAddr(), n.EP.LocalAddr()
					delays[[2]netip.AddrPort{x, y}], delays[[2]netip.AddrPort{y, x}] = d, d
				}
				mu.Unlock()
				kademlia.Seen(a.DHT, liar.Contact(), time.Now())
				kademlia.Seen(a.DHT, honest.Contact(), time.Now())
				kademlia.Seen(honest.DHT, h.Contact(), time.Now())
				namesAt(liar, h.ID(), other.EP.LocalAddr())

				got, st, err := a.DHT.Lookup(t.Context(), h.ID())
				if err != nil {
					t.Fatal(err)
				}
				if len(got) == 0 || got[0] != h.Contact() {
					t.Fatalf("lookup of H found %v, want H at %v first", got, h.EP.LocalAddr())
				}
				// H at the wrong address, and the liar, found out.
				if st.Failed != 2 {
					t.Errorf("%d requests failed, want 2 (H at the wrong address, and the liar)", st.Failed)
				}
				if slices.ContainsFunc(a.DHT.Contacts(), func(c kademlia.ContactInfo) bool { return c.ID == liar.ID() }) {
					t.Error("the liar that named H at another node's address stayed in the routing table")
				}
			})
		})
	}
}

// TestLookupKeepsUnansweredContactsOutOfTheTable: contacts a liar names
// in NODES live only in the lookup that heard of them; none enters the
// routing table, and none is named in the searcher's NODES answers.
func TestLookupKeepsUnansweredContactsOutOfTheTable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := smallNet(t, 22, 4, 3)
		nodes := s.AddNodes(4, false)
		a, liar, r := nodes[0], nodes[1], nodes[2]
		kademlia.Seen(a.DHT, liar.Contact(), time.Now())
		kademlia.Seen(a.DHT, nodes[3].Contact(), time.Now())
		made := s.RandomID()
		namesAt(liar, made, netip.MustParseAddrPort("10.254.254.254:9"))
		if _, _, err := a.DHT.Lookup(t.Context(), made); err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(a.DHT.Contacts(), func(c kademlia.ContactInfo) bool { return c.ID == made }) {
			t.Error("a contact only a liar named entered the routing table")
		}
		if slices.Contains(askNodes(t, r, a, made), made) {
			t.Error("A names a contact it never verified")
		}
	})
}

// TestDeleteLookupFindsHoldersItDidNotKnow: a delete is a lookup whose
// requests are DELETEs (section 8), so a client that knows one node of
// a network still reaches every holder: non-holders answer NODES, which
// lead it on, and the holders answer OK.
func TestDeleteLookupFindsHoldersItDidNotKnow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, full, putter := meshWithClient(t, 11, 8, 40)
		ctx := t.Context()
		for i, del := range []func(d *kademlia.DHT, ctx context.Context, id block.ID, pre [32]byte) (int, error){
			(*kademlia.DHT).Delete, (*kademlia.DHT).DeleteData,
		} {
			data, pre := kademlia.DataBlockWithDeletion("a shard deleted by a stranger " + string(rune('a'+i)))
			id := block.Sum(data)
			if _, err := putter.DHT.Put(ctx, data, time.Hour); err != nil {
				t.Fatal(err)
			}
			// The deleter knows only the node farthest from the block.
			far := slices.MaxFunc(full, func(a, b *kadsim.Node) int { return kademlia.CompareDistance(a.Contact().ID, b.Contact().ID, id) })
			deleter := s.AddNodes(1, true)[0]
			kademlia.Seen(deleter.DHT, far.Contact(), time.Now())
			if n, err := del(deleter.DHT, ctx, id, pre); err != nil || n != block.ShardReplicas {
				t.Fatalf("delete %d removed %d copies (%v), want %d", i, n, err, block.ShardReplicas)
			}
			for _, x := range full {
				if _, err := x.Store.Stat(ctx, id); err == nil {
					t.Fatalf("delete %d left a copy at %s", i, x.Contact().ID.Short())
				}
			}
		}
	})
}

// TestDataBlocksAreLookedUpNarrowly checks the widths of section 8: a
// client that knows every node puts a data block with a lookup that
// ends at the R closest (each its own IP group here: R FIND_NODEs, then
// R STOREs). A delete is a lookup whose requests are DELETEs: one that
// does not know the type asks the 2R closest, one that knows it is a
// data block the R closest. A shard the client fetched (one FIND_BLOCK:
// BlockAlpha) is deleted at R without a lookup. An index block has the
// full K: its delete widens to the K closest (a FIND_NODE lookup, then
// DELETEs at those not asked) once more than R of the 2R held it, and no
// copy is left.
// TestDeleteAfterGetPassesOverGoneContacts: a delete of a block the
// node just got starts at the contacts its Get's lookup knew, some of
// them named but never asked. Those that are gone are passed over after
// a stall time, as in any lookup, instead of holding the delete for the
// dial timeout, and every live holder still deletes.
func TestDeleteAfterGetPassesOverGoneContacts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, full, client := meshWithClient(t, 7, 12, 16)
		ctx := t.Context()
		holders := func(id block.ID) (live, all []*kadsim.Node) {
			for _, x := range full {
				if _, err := x.Store.Stat(ctx, id); err == nil {
					all = append(all, x)
					if !x.Dead {
						live = append(live, x)
					}
				}
			}
			return live, all
		}
		idx, ipre := kademlia.IndexBlock(s.Rand, s.RandomID(), 0)
		shard, spre := kademlia.DataBlockWithDeletion("a shard whose holder left")
		for _, c := range []struct {
			what string
			blk  []byte
			pre  [32]byte
			del  func(context.Context, block.ID, [32]byte) (int, error)
		}{
			{"an index block", idx, ipre, client.DHT.Delete},
			{"a shard", shard, spre, client.DHT.DeleteData},
		} {
			id := block.Sum(c.blk)
			if _, err := client.DHT.Put(ctx, c.blk, time.Hour); err != nil {
				t.Fatal(err)
			}
			if _, _, err := client.DHT.Get(ctx, id); err != nil {
				t.Fatalf("Get %s: %v", c.what, err)
			}
			// The holders farthest from the block were not the one the
			// Get asked (it asks the closest first): one of them leaves.
			_, all := holders(id)
			gone := all[0]
			for _, x := range all {
				if kademlia.CompareDistance(x.ID(), gone.ID(), id) > 0 {
					gone = x
				}
			}
			s.Kill(gone)
			live, _ := holders(id)
			start := time.Now()
			deleted, err := c.del(ctx, id, c.pre)
			if took := time.Since(start); took >= time.Second {
				t.Errorf("deleting %s with a holder gone took %v: it waited for the dial timeout (1 s)", c.what, took)
			}
			if err != nil || deleted != len(live) {
				t.Errorf("deleting %s removed %d copies (%v), want the %d live ones", c.what, deleted, err, len(live))
			}
			if left, _ := holders(id); len(left) != 0 {
				t.Errorf("%d live copies of %s left", len(left), c.what)
			}
		}
	})
}

func TestDataBlocksAreLookedUpNarrowly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const k = 12
		r, w := block.ShardReplicas, 2*block.ShardReplicas
		s, full, client := meshWithClient(t, 7, k, 16)
		sent := func(f func()) int {
			before := client.DHT.Stats().RequestsSent
			f()
			return int(client.DHT.Stats().RequestsSent - before)
		}
		held := func(id block.ID) (n int) {
			for _, x := range full {
				if _, err := x.Store.Stat(t.Context(), id); err == nil {
					n++
				}
			}
			return n
		}
		ctx := t.Context()
		put := func(data []byte) {
			t.Helper()
			if n := sent(func() {
				if stored, err := client.DHT.Put(ctx, data, time.Hour); err != nil || stored != r {
					t.Fatalf("Put stored at %d nodes (%v), want %d", stored, err, r)
				}
			}); n != r {
				// The client knows every node: a store lookup (9.7).
				// TestPutGetDeleteOnNetwork puts where buckets are full.
				t.Fatalf("a data block's put sent %d requests, want %d STOREs", n, r)
			}
		}
		deleted := func(id block.ID, want int, what string, del func() (int, error)) {
			t.Helper()
			if n := sent(func() {
				if deleted, err := del(); err != nil || deleted != r {
					t.Fatalf("%s removed %d copies (%v), want %d", what, deleted, err, r)
				}
			}); n != want {
				t.Fatalf("%s sent %d requests, want %d", what, n, want)
			}
			if h := held(id); h != 0 {
				t.Fatalf("%d copies left after %s", h, what)
			}
		}

		data, pre := kademlia.DataBlockWithDeletion("a shard looked up narrowly")
		id := block.Sum(data)
		put(data)
		deleted(id, w, "a delete of a block of unknown type", func() (int, error) { return client.DHT.Delete(ctx, id, pre) })

		shard, spre := kademlia.DataBlockWithDeletion("a shard deleted as one")
		sid := block.Sum(shard)
		put(shard)
		deleted(sid, r, "a data block's delete", func() (int, error) { return client.DHT.DeleteData(ctx, sid, spre) })

		// A shard the client just got is deleted at the R closest its
		// Get's lookup knew, without another lookup.
		got, gpre := kademlia.DataBlockWithDeletion("a shard fetched, then deleted")
		gid := block.Sum(got)
		put(got)
		if n := sent(func() {
			if b, _, err := client.DHT.Get(ctx, gid); err != nil || !bytes.Equal(b, got) {
				t.Fatalf("Get: %v", err)
			}
		}); n != 1 {
			t.Fatalf("a Get that asks a holder first sent %d FIND_BLOCKs, want 1", n)
		}
		deleted(gid, r, "deleting a shard just fetched", func() (int, error) { return client.DHT.Delete(ctx, gid, gpre) })

		idx, ipre := kademlia.IndexBlock(s.Rand, s.RandomID(), 0)
		iid := block.Sum(idx)
		if n := sent(func() {
			if stored, err := client.DHT.Put(ctx, idx, time.Hour); err != nil || stored != k {
				t.Fatalf("Put stored at %d nodes (%v), want %d", stored, err, k)
			}
		}); n != k {
			// A store lookup, as for the data blocks above.
			t.Fatalf("an index block's put sent %d requests, want %d STOREs", n, k)
		}
		if n := sent(func() {
			if deleted, err := client.DHT.Delete(ctx, iid, ipre); err != nil || deleted != k {
				t.Fatalf("Delete removed %d copies (%v), want %d", deleted, err, k)
			}
		}); n != w+k+(k-w) {
			t.Fatalf("an index block's delete sent %d requests, want %d", n, w+k+(k-w))
		}
		if h := held(iid); h != 0 {
			t.Fatalf("%d copies left after the delete", h)
		}

		// An index block the client just got is deleted at the K closest
		// its Get's lookup knew, all at once: K DELETEs, no lookup.
		putIndex := func() (block.ID, []byte, [32]byte) {
			t.Helper()
			idx, pre := kademlia.IndexBlock(s.Rand, s.RandomID(), 0)
			if stored, err := client.DHT.Put(ctx, idx, time.Hour); err != nil || stored != k {
				t.Fatalf("Put stored at %d nodes (%v), want %d", stored, err, k)
			}
			return block.Sum(idx), idx, pre
		}
		fid, fidx, fpre := putIndex()
		if n := sent(func() {
			if b, _, err := client.DHT.Get(ctx, fid); err != nil || !bytes.Equal(b, fidx) {
				t.Fatalf("Get: %v", err)
			}
		}); n != 1 {
			t.Fatalf("a Get of an index block sent %d FIND_BLOCKs, want 1", n)
		}
		if n := sent(func() {
			if deleted, err := client.DHT.Delete(ctx, fid, fpre); err != nil || deleted != k {
				t.Fatalf("Delete removed %d copies (%v), want %d", deleted, err, k)
			}
		}); n != k {
			t.Fatalf("deleting an index block just fetched sent %d requests, want %d DELETEs", n, k)
		}
		if h := held(fid); h != 0 {
			t.Fatalf("%d copies left after deleting an index block just fetched", h)
		}

		// When fewer than K of those held it (most dropped it), the
		// delete looks the K closest up and still finds the rest.
		lid, _, lpre := putIndex()
		if _, _, err := client.DHT.Get(ctx, lid); err != nil {
			t.Fatalf("Get: %v", err)
		}
		dropped := 0
		for _, x := range full {
			if dropped == k/2+1 {
				break
			}
			if err := x.Store.Drop(ctx, lid); err == nil {
				dropped++
			}
		}
		if n := sent(func() {
			if deleted, err := client.DHT.Delete(ctx, lid, lpre); err != nil || deleted != k-dropped {
				t.Fatalf("Delete removed %d copies (%v), want %d", deleted, err, k-dropped)
			}
		}); n <= k {
			t.Fatalf("a delete whose remembered holders mostly lost the block sent %d requests, want more than the %d DELETEs", n, k)
		}
		if h := held(lid); h != 0 {
			t.Fatalf("%d copies left after the delete went on", h)
		}
	})
}
