package kademlia_test

import (
	"math"

	"github.com/flowmail/flowmail/block"
	"net/netip"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flowmail/flowmail/kademlia"
	"github.com/flowmail/flowmail/kademlia/kadsim"
)

// TestAdversarialSimulation runs a network where a fifth of the nodes
// collude (kadsim.Adversary): they lie in NODES (naming each other and
// made-up IDs at dead addresses and at each other's addresses), drop
// STOREs and answer LIST with junk. K of them are quiet Sybils ground
// next to one victim's address, from two IP groups: they answer like
// honest nodes and drop STOREs. Honest clients (joined through honest
// nodes, as a client joins through its own) store blocks, some ground
// next to the victim; honest nodes get them, before and after a
// republish round. 1,000 nodes (250 under -race; FLOWMAIL_LONG=1:
// 10,000).
func TestAdversarialSimulation(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation skipped in -short mode")
	}
	seed := kadsim.Seed(t)
	short := 1000
	if raceEnabled {
		short = 250 // the same checks, within the suite's time under -race on a busy machine
	}
	n := kadsim.Size(t, short, 10000)
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		s := kadsim.New(t, seed, kadsim.MemConfig())
		s.RepublishInterval = 6 * time.Minute
		start := time.Now()
		victim := s.RandomID()
		// Closer to the victim than the K-th closest honest node by a
		// few bits.
		bits := int(math.Ceil(math.Log2(float64(n)/kademlia.K))) + 2
		var sybils []*kadsim.Node
		for i, id := range s.GrindSybils(victim, bits, kademlia.K) {
			addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 254, byte(i % 2), byte(10 + i)}), 4433)
			sybils = append(sybils, s.AddAt(id, false, addr))
		}
		honestAndLiars := s.AddNodes(n-len(sybils), false)
		all := append(slices.Clone(honestAndLiars), sybils...)
		s.Rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		s.Join(ctx, all, max(50, n/40))
		adv := s.NewAdversary()
		for _, sy := range sybils {
			adv.CorruptQuiet(sy)
		}
		liars := n/5 - len(sybils)
		for _, x := range honestAndLiars[:liars] {
			adv.Corrupt(x)
		}
		honest := honestAndLiars[liars:]
		t.Logf("%d nodes joined in %v virtual; %d adversarial (%d Sybils sharing %d bits with the victim %v)", n, time.Since(start), len(adv.Members()), len(sybils), bits, victim.Short())

		ids := s.StoreFromClients(ctx, t, 25, 20, honest)
		// The victim's blocks land next to the Sybils.
		writer := s.AddNodes(1, true)[0]
		s.JoinThrough(ctx, []*kadsim.Node{writer}, honest, 1)
		var near []block.ID
		for range 20 {
			b := s.GrindBlock(victim, bits+4)
			if _, err := writer.DHT.Put(ctx, b, 24*time.Hour); err != nil {
				t.Errorf("put next to the victim: %v", err)
			}
			near = append(near, block.Sum(b))
		}
		s.Kill(writer)
		nearGot := s.CountRetrievable(ctx, honest, near)
		t.Logf("blocks next to the victim, where the Sybils are: %d of %d retrievable", nearGot, len(near))
		if nearGot < len(near) {
			t.Errorf("the Sybils next to the victim swallowed %d of its %d blocks", len(near)-nearGot, len(near))
		}
		got := s.CountRetrievable(ctx, honest, ids) + s.CountRetrievable(ctx, honest, ids)
		t.Logf("gets of honest blocks from honest nodes: %d of %d", got, 2*len(ids))
		if got*100 < 99*2*len(ids) {
			t.Errorf("only %d of %d gets of honest blocks succeeded", got, 2*len(ids))
		}
		f := kadsim.RunJobs(ctx, t, honest, s.RandomJobs(honest, 200))
		t.Logf("lookups by honest nodes (exact: the true %d closest honest nodes): %v", kademlia.K, f)

		s.RepublishRound(ctx, t)
		// A data block lives at R nodes: one whose R holders were all
		// adversaries (which drop STOREs) is gone, probability about
		// 0.2^R (0.8% at R = 3; the erasure code covers that).
		heldByHonest := 0
		for _, h := range s.HoldersOf(ctx, ids) {
			if h > 0 {
				heldByHonest++
			}
		}
		fetchable := s.CountRetrievable(ctx, honest, ids)
		t.Logf("after a republish round: %d of %d honest blocks fetchable, %d held by an honest node", fetchable, len(ids), heldByHonest)
		if fetchable*100 < 99*heldByHonest || heldByHonest*100 < 95*len(ids) {
			t.Errorf("only %d of %d honest blocks fetchable after a republish round (%d held by an honest node)", fetchable, len(ids), heldByHonest)
		}
	})
}
