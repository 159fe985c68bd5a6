package kademlia_test

import (
	"net/netip"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/kademlia"
	"github.com/flowmail/flowmail/kademlia/kadsim"
	"github.com/flowmail/flowmail/transport"
)

// TestSimulationPassesOverDeadContacts kills 30% of a network whose dial
// timeout is 5 s and looks up from the survivors right away, once with
// stall handling and once without, on two networks built from one seed:
// the same nodes look up the same targets. Without it, three dead
// contacts among the closest not yet asked hold a lookup for a whole dial
// timeout; with it, each costs the stall time. (Running both on one
// network would bias exactness: slow lookups gain from what the fast
// ones taught their peers while they wait.)
func TestSimulationPassesOverDeadContacts(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation skipped in -short mode")
	}
	seed := kadsim.Seed(t)
	// 250 nodes keep the default suite short; the figures at 2,000 and
	// 10,000 come from FLOWMAIL_SIMNODES.
	n := kadsim.Size(t, 250, 250)
	const count = 100
	dialTimeout := 5 * time.Second
	run := func(stall time.Duration) (alive, dead *kadsim.Figures) {
		synctest.Test(t, func(t *testing.T) {
			ctx := t.Context()
			mc := kadsim.MemConfig()
			mc.DialTimeout = dialTimeout
			s := kadsim.New(t, seed, mc)
			s.Tune = func(c *kademlia.Config) { c.StallTimeout = stall }
			s.Join(ctx, s.AddNodes(n, false), 50)
			alive = s.RunLookups(ctx, t, s.Live(), count)
			s.FailFraction(0.3)
			dead = s.RunLookups(ctx, t, s.Live(), count)
		})
		return alive, dead
	}
	before, with := run(0)
	beforeOff, without := run(-1)
	t.Logf("N=%d, all alive, stall handling: %v", n, before)
	t.Logf("N=%d, all alive, no stall handling: %v", n, beforeOff)
	t.Logf("N=%d, 30%% dead, stall handling: %v", n, with)
	t.Logf("N=%d, 30%% dead, no stall handling: %v", n, without)

	if stalls := slices.Max(before.Stalled); stalls != 0 {
		// Every round trip of the simulator is under the 250 ms floor.
		t.Errorf("a lookup among live nodes had %d stalled requests, want none", stalls)
	}
	if before.Exact*100 < 99*count {
		t.Errorf("only %d of %d lookups found the true %d closest", before.Exact, count, kademlia.K)
	}
	if !slices.Equal(before.Msgs, beforeOff.Msgs) {
		t.Errorf("among live nodes the lookups sent other messages with stall handling than without (medians %d, %d)", kadsim.Percentile(before.Msgs, 50), kadsim.Percentile(beforeOff.Msgs, 50))
	}
	dial := int(dialTimeout / time.Millisecond)
	if m := kadsim.Percentile(without.Millis, 50); m < dial {
		t.Errorf("without stall handling the median lookup took %d ms, want at least the %d ms dial timeout: the test does not reach dead contacts", m, dial)
	}
	// Each dead contact holds one of the Alpha slots for the stall time
	// (250 ms here) instead of the dial timeout: about 9 of them add 3
	// stall times to the 0.6 s of a lookup among the living.
	if m := kadsim.Percentile(with.Millis, 50); m > dial/2 {
		t.Errorf("with stall handling the median lookup took %d ms, want under half the %d ms dial timeout", m, dial)
	}
	if p := kadsim.Percentile(with.Millis, 95); p >= dial {
		t.Errorf("with stall handling the 95th percentile lookup took %d ms, want under the %d ms dial timeout", p, dial)
	}
	// Passing over the dead costs no exactness: lookups miss live nodes
	// after a mass failure because answers name the dead in their place,
	// with stall handling or without.
	if with.Exact+count/50 < without.Exact {
		t.Errorf("with stall handling %d of %d lookups found the true %d closest live nodes, without it %d", with.Exact, count, kademlia.K, without.Exact)
	}
}

// stallNet is a small network with fixed 5 ms links (unless linkLatency
// says otherwise), a 10 s dial timeout, no IP limits, and the given K,
// Alpha 3 and stall time for every node.
func stallNet(t *testing.T, seed uint64, k int, stall time.Duration, linkLatency func(a, b netip.AddrPort) time.Duration) *kadsim.Net {
	mc := transport.MemConfig{Latency: 5 * time.Millisecond, LinkLatency: linkLatency, DialTimeout: 10 * time.Second}
	s := kadsim.New(t, seed, mc)
	s.Tune = func(c *kademlia.Config) {
		c.K, c.Alpha, c.StallTimeout = k, 3, stall
		c.BucketIPLimit, c.TableIPLimit = -1, -1
	}
	return s
}

// failuresOf returns the consecutive failures d's table holds for id, -1
// when id is not in it.
func failuresOf(d *kademlia.DHT, id block.ID) int {
	for _, c := range d.Contacts() {
		if c.ID == id {
			return c.Failures
		}
	}
	return -1
}

// meshAroundTarget builds 40 meshed nodes whose peers answer with K = 8
// while the searcher, returned first, runs with K = 4, so answers name
// enough live nodes for a lookup to end before dead contacts fail. It
// returns a random target and the 8 nodes closest to it; prepare runs
// on those before the ones listed in dead are killed.
func meshAroundTarget(t *testing.T, stall time.Duration, dead func(closest []block.ID) []block.ID, prepare func(from *kadsim.Node, closest []block.ID)) (from *kadsim.Node, target block.ID, closest []block.ID) {
	s := stallNet(t, 2, 8, stall, nil)
	nodes := s.AddNodes(40, false)
	from = nodes[0]
	kademlia.SetK(from.DHT, 4)
	meshSeed(nodes)
	target, closest = targetHeldBy(t, s, from, nodes[1:], 8)
	prepare(from, closest)
	gone := dead(closest)
	for _, n := range nodes {
		if slices.Contains(gone, n.DHT.ID()) {
			s.Kill(n)
		}
	}
	return from, target, closest
}

// targetHeldBy draws a target whose n closest of others are all in
// from's routing table: meshed nodes in K-sized buckets do not all fit,
// and the tests that use it ask those closest first.
func targetHeldBy(t *testing.T, s *kadsim.Net, from *kadsim.Node, others []*kadsim.Node, n int) (block.ID, []block.ID) {
	t.Helper()
	held := make(map[block.ID]bool)
	for _, c := range from.DHT.Contacts() {
		held[c.ID] = true
	}
	for range 10000 {
		target := s.RandomID()
		closest := kadsim.TrueClosest(others, target, n)
		if !slices.ContainsFunc(closest, func(id block.ID) bool { return !held[id] }) {
			return target, closest
		}
	}
	t.Fatalf("no target has its %d closest all in the searcher's table: pick another seed", n)
	return block.ID{}, nil
}

// timedLookup runs a lookup from from and returns how long it took.
func timedLookup(t *testing.T, from *kadsim.Node, target block.ID) ([]block.ID, kademlia.LookupStats, time.Duration) {
	t.Helper()
	start := time.Now()
	got, st, err := from.DHT.Lookup(t.Context(), target)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	return kadsim.ContactIDs(got), st, took
}

// TestLookupPassesOverStalledDeadContacts kills the three contacts closest
// to the target, which the lookup asks first and which fill all Alpha
// slots. With stall handling they cost the stall time (300 ms) and two
// round trips of 10 ms follow; without it, the 10 s dial timeout. The
// searcher runs with K = 4 and its peers with K = 8, so answers name
// enough live nodes for the lookup to end before the dead fail.
func TestLookupPassesOverStalledDeadContacts(t *testing.T) {
	const stall = 300 * time.Millisecond
	tests := map[string]struct {
		stall time.Duration
		took  time.Duration
	}{
		"stall handling":    {stall, stall + 2*10*time.Millisecond},
		"no stall handling": {-1, 10*time.Second + 2*10*time.Millisecond},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				first3 := func(closest []block.ID) []block.ID { return closest[:3] }
				from, target, closest := meshAroundTarget(t, tc.stall, first3, func(*kadsim.Node, []block.ID) {})
				dead := first3(closest)
				got, st, took := timedLookup(t, from, target)
				if !slices.Equal(got, closest[3:7]) {
					t.Errorf("lookup found %v, want the 4 closest live %v", got, closest[3:7])
				}
				if took != tc.took {
					t.Errorf("lookup took %v, want %v", took, tc.took)
				}
				wantStalled := 0
				if tc.stall > 0 {
					wantStalled = 3
				}
				if st.Stalled != wantStalled || st.Failed != 3 {
					t.Errorf("stats %+v, want %d stalled and 3 failed", st, wantStalled)
				}
				// Charged once each, whether at the stall or at the timeout.
				for _, id := range dead {
					if f := failuresOf(from.DHT, id); f != 1 {
						t.Errorf("dead contact %v has %d failures in the table, want 1", id.Short(), f)
					}
				}
			})
		})
	}
}

// TestLookupUsesLateAnswerOfStalledContact: a slow peer S (400 ms each
// way) stalls at 300 ms, but the searcher knows too few others to fill K,
// so it waits; S's late answer names X, whom no one else knows, and both
// end up in the result.
func TestLookupUsesLateAnswerOfStalledContact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var slow netip.AddrPort
		s := stallNet(t, 3, 4, 300*time.Millisecond, func(a, b netip.AddrPort) time.Duration {
			if a == slow || b == slow {
				return 400 * time.Millisecond
			}
			return 5 * time.Millisecond
		})
		nodes := s.AddNodes(5, false)
		from, sn, a, b, x := nodes[0], nodes[1], nodes[2], nodes[3], nodes[4]
		slow = sn.EP.LocalAddr()
		know := func(n *kadsim.Node, others ...*kadsim.Node) {
			for _, o := range others {
				kademlia.Seen(n.DHT, o.Contact(), time.Now())
			}
		}
		know(from, sn, a, b)
		know(a, b, from)
		know(b, a, from)
		know(sn, x, a, b, from)
		know(x, sn)

		ids, st, took := timedLookup(t, from, s.RandomID())
		if len(ids) != 4 || !slices.Contains(ids, sn.DHT.ID()) || !slices.Contains(ids, x.DHT.ID()) {
			t.Errorf("lookup found %v, want S %v and X %v among all 4", ids, sn.DHT.ID().Short(), x.DHT.ID().Short())
		}
		if st.Stalled != 1 || st.Failed != 0 || st.Messages != 4 {
			t.Errorf("stats %+v, want 4 messages, 1 stalled, none failed", st)
		}
		// S answers at 800 ms, X 10 ms later.
		if want := 810 * time.Millisecond; took != want {
			t.Errorf("lookup took %v, want %v", took, want)
		}
		if f := failuresOf(from.DHT, sn.DHT.ID()); f != 0 {
			t.Errorf("S has %d failures after answering, want the stall's charge cleared", f)
		}
	})
}

// TestFanOutsToDeadNodesOverlap: the STOREs of Put and republishing, the
// DELETEs of Delete and the LISTs of List go to their nodes at once, so
// however many of them are dead the caller waits one dial timeout.
func TestFanOutsToDeadNodesOverlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const dial = 3 * time.Second
		s := kadsim.New(t, 4, transport.MemConfig{DialTimeout: dial})
		s.Tune = func(c *kademlia.Config) { c.BucketIPLimit, c.TableIPLimit = -1, -1 }
		nodes := s.AddNodes(kademlia.K+1, false)
		from := nodes[0]
		var cs []transport.Contact
		for i, n := range nodes[1:] {
			cs = append(cs, n.Contact())
			if i%4 != 0 {
				s.Kill(n) // 15 of 20 dead
			}
		}
		blk, pre := kademlia.DataBlockWithDeletion("to dead and living nodes")
		id := block.Sum(blk)
		ctx := t.Context()
		steps := []struct {
			name   string
			run    func() (int, []error)
			wantOK int
		}{
			{"STORE", func() (int, []error) {
				return kademlia.RequestAll(ctx, from.DHT, cs, kademlia.Store{Lifetime: 3600, Block: blk})
			}, 5},
			{"LIST", func() (int, []error) {
				return kademlia.ListAll(ctx, from.DHT, cs, id)
			}, 5},
			{"DELETE", func() (int, []error) {
				return kademlia.RequestAll(ctx, from.DHT, cs, kademlia.Delete{ID: id, Preimage: pre})
			}, 5},
		}
		for _, step := range steps {
			start := time.Now()
			ok, failed := step.run()
			if took := time.Since(start); took != dial {
				t.Errorf("%s to 15 dead and 5 live nodes took %v, want one dial timeout (%v)", step.name, took, dial)
			}
			if ok != step.wantOK || len(failed) != len(cs)-step.wantOK {
				t.Errorf("%s: %d answered, %d failed, want %d and %d", step.name, ok, len(failed), step.wantOK, len(cs)-step.wantOK)
			}
		}
	})
}

// TestLookupAsksFailingContactsWithoutWaiting: the three contacts closest
// to the target failed a request before, so the lookup sends to them
// without giving them a slot. Two of them are dead and cost nothing; the
// third is alive again, answers, is used, and is forgiven.
func TestLookupAsksFailingContactsWithoutWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		from, target, closest := meshAroundTarget(t, 300*time.Millisecond,
			func(closest []block.ID) []block.ID { return closest[1:3] },
			func(from *kadsim.Node, closest []block.ID) {
				for _, id := range closest[:3] {
					kademlia.ChargeFailure(from.DHT, transport.Contact{ID: id})
				}
			})
		back, dead := closest[0], closest[1:3]
		got, st, took := timedLookup(t, from, target)
		if want := append([]block.ID{back}, closest[3:6]...); !slices.Equal(got, want) {
			t.Errorf("lookup found %v, want %v", got, want)
		}
		// Two round trips of 10 ms: the dead hold nothing.
		if want := 20 * time.Millisecond; took != want {
			t.Errorf("lookup took %v, want %v", took, want)
		}
		if st.Stalled != 3 || st.Failed != 2 {
			t.Errorf("stats %+v, want 3 stalled, 2 failed", st)
		}
		if f := failuresOf(from.DHT, back); f != 0 {
			t.Errorf("the contact that answered has %d failures, want 0", f)
		}
		for _, id := range dead {
			if f := failuresOf(from.DHT, id); f != 1 {
				t.Errorf("dead contact %v has %d failures, want the 1 it had (abandoned, not charged again)", id.Short(), f)
			}
		}
	})
}
