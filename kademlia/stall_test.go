package kademlia

import (
	"net/netip"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/transport"
)

func TestStallTimeAdaptsToAnsweredRoundTrips(t *testing.T) {
	tests := map[string]struct {
		samples []time.Duration
		want    time.Duration
	}{
		"before any answer":                  {nil, initialStall},
		"fast answers: the floor":            {[]time.Duration{2 * time.Millisecond, 3 * time.Millisecond, time.Millisecond}, minStall},
		"one answer: srtt + 4·srtt/2":        {[]time.Duration{100 * time.Millisecond}, 300 * time.Millisecond},
		"steady answers: srtt + 4·rttvar":    {[]time.Duration{200 * time.Millisecond, 200 * time.Millisecond}, 200*time.Millisecond + 4*75*time.Millisecond},
		"slow answers: the ceiling":          {[]time.Duration{900 * time.Millisecond, 1500 * time.Millisecond}, maxStall},
		"an hour-long answer counts as 2 s":  {[]time.Duration{time.Hour}, maxStall},
		"a negative duration counts as zero": {[]time.Duration{-time.Second}, minStall},
		// srtt 50 ms, rttvar 25, 18.75, 14.0625 ms; then 1 s: rttvar
		// (3·14.0625 + 950)/4 = 248.046875 ms, srtt 168.75 ms.
		"a slow answer after fast ones raises it": {[]time.Duration{50 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond, time.Second}, 1160937500 * time.Nanosecond},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var e rttEstimator
			for _, d := range tc.samples {
				e.add(d)
			}
			if got := e.stall(); got != tc.want {
				t.Errorf("stall %v, want %v", got, tc.want)
			}
		})
	}
}

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
	seed := simSeed(t)
	// 250 nodes keep the default suite short; the figures at 2,000 and
	// 10,000 come from -simnodes.
	n := 250
	if *simNodesFlag > 0 {
		n = *simNodesFlag
	}
	const count = 100
	dialTimeout := 5 * time.Second
	run := func(stall time.Duration) (alive, dead *simFigures) {
		synctest.Test(t, func(t *testing.T) {
			ctx := t.Context()
			mc := simMemConfig()
			mc.DialTimeout = dialTimeout
			s := newSimNet(t, seed, mc)
			s.tune = func(c *Config) { c.StallTimeout = stall }
			s.join(ctx, s.addNodes(n, false), 50)
			alive = runLookups(ctx, t, s, s.live(), count)
			failFraction(s, 0.3)
			dead = runLookups(ctx, t, s, s.live(), count)
		})
		return alive, dead
	}
	before, with := run(0)
	beforeOff, without := run(-1)
	t.Logf("N=%d, all alive, stall handling: %v", n, before)
	t.Logf("N=%d, all alive, no stall handling: %v", n, beforeOff)
	t.Logf("N=%d, 30%% dead, stall handling: %v", n, with)
	t.Logf("N=%d, 30%% dead, no stall handling: %v", n, without)

	if stalls := slices.Max(before.stalled); stalls != 0 {
		// Every round trip of the simulator is under the 250 ms floor.
		t.Errorf("a lookup among live nodes had %d stalled requests, want none", stalls)
	}
	if before.exact*100 < 99*count {
		t.Errorf("only %d of %d lookups found the true %d closest", before.exact, count, K)
	}
	if !slices.Equal(before.msgs, beforeOff.msgs) {
		t.Errorf("among live nodes the lookups sent other messages with stall handling than without (medians %d, %d)", percentile(before.msgs, 50), percentile(beforeOff.msgs, 50))
	}
	dial := int(dialTimeout / time.Millisecond)
	if m := percentile(without.millis, 50); m < dial {
		t.Errorf("without stall handling the median lookup took %d ms, want at least the %d ms dial timeout: the test does not reach dead contacts", m, dial)
	}
	// Each dead contact holds one of the Alpha slots for the stall time
	// (250 ms here) instead of the dial timeout: about 9 of them add 3
	// stall times to the 0.6 s of a lookup among the living.
	if m := percentile(with.millis, 50); m > dial/2 {
		t.Errorf("with stall handling the median lookup took %d ms, want under half the %d ms dial timeout", m, dial)
	}
	if p := percentile(with.millis, 95); p >= dial {
		t.Errorf("with stall handling the 95th percentile lookup took %d ms, want under the %d ms dial timeout", p, dial)
	}
	// Passing over the dead costs no exactness: lookups miss live nodes
	// after a mass failure because answers name the dead in their place,
	// with stall handling or without.
	if with.exact+count/50 < without.exact {
		t.Errorf("with stall handling %d of %d lookups found the true %d closest live nodes, without it %d", with.exact, count, K, without.exact)
	}
}

// stallNet is a small network with fixed 5 ms links (unless linkLatency
// says otherwise), a 10 s dial timeout, no IP limits, and the given K,
// Alpha 3 and stall time for every node.
func stallNet(t *testing.T, seed uint64, k int, stall time.Duration, linkLatency func(a, b netip.AddrPort) time.Duration) *simNet {
	mc := transport.MemConfig{Latency: 5 * time.Millisecond, LinkLatency: linkLatency, DialTimeout: 10 * time.Second}
	s := newSimNet(t, seed, mc)
	s.tune = func(c *Config) {
		c.K, c.Alpha, c.StallTimeout = k, 3, stall
		c.BucketIPLimit, c.TableIPLimit = -1, -1
	}
	return s
}

// failuresOf returns the consecutive failures d's table holds for id, -1
// when id is not in it.
func failuresOf(d *DHT, id block.ID) int {
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
func meshAroundTarget(t *testing.T, stall time.Duration, dead func(closest []block.ID) []block.ID, prepare func(from *simNode, closest []block.ID)) (from *simNode, target block.ID, closest []block.ID) {
	s := stallNet(t, 5, 8, stall, nil)
	nodes := s.addNodes(40, false)
	from = nodes[0]
	from.dht.cfg.K = 4
	meshSeed(nodes)
	target = s.randomID()
	closest = trueClosest(nodes[1:], target, 8)
	prepare(from, closest)
	gone := dead(closest)
	for _, n := range nodes {
		if slices.Contains(gone, n.dht.ID()) {
			s.kill(n)
		}
	}
	return from, target, closest
}

// timedLookup runs a lookup from from and returns how long it took.
func timedLookup(t *testing.T, from *simNode, target block.ID) ([]block.ID, LookupStats, time.Duration) {
	t.Helper()
	start := time.Now()
	got, st, err := from.dht.Lookup(t.Context(), target)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	return contactIDs(got), st, took
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
				from, target, closest := meshAroundTarget(t, tc.stall, first3, func(*simNode, []block.ID) {})
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
					if f := failuresOf(from.dht, id); f != 1 {
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
		nodes := s.addNodes(5, false)
		from, sn, a, b, x := nodes[0], nodes[1], nodes[2], nodes[3], nodes[4]
		slow = sn.ep.LocalAddr()
		know := func(n *simNode, others ...*simNode) {
			for _, o := range others {
				n.dht.table.seen(o.contact(), time.Now())
			}
		}
		know(from, sn, a, b)
		know(a, b, from)
		know(b, a, from)
		know(sn, x, a, b, from)
		know(x, sn)

		ids, st, took := timedLookup(t, from, s.randomID())
		if len(ids) != 4 || !slices.Contains(ids, sn.dht.ID()) || !slices.Contains(ids, x.dht.ID()) {
			t.Errorf("lookup found %v, want S %v and X %v among all 4", ids, sn.dht.ID().Short(), x.dht.ID().Short())
		}
		if st.Stalled != 1 || st.Failed != 0 || st.Messages != 4 {
			t.Errorf("stats %+v, want 4 messages, 1 stalled, none failed", st)
		}
		// S answers at 800 ms, X 10 ms later.
		if want := 810 * time.Millisecond; took != want {
			t.Errorf("lookup took %v, want %v", took, want)
		}
		if f := failuresOf(from.dht, sn.dht.ID()); f != 0 {
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
		s := newSimNet(t, 4, transport.MemConfig{DialTimeout: dial})
		s.tune = func(c *Config) { c.BucketIPLimit, c.TableIPLimit = -1, -1 }
		nodes := s.addNodes(K+1, false)
		from := nodes[0]
		var cs []transport.Contact
		for i, n := range nodes[1:] {
			cs = append(cs, n.contact())
			if i%4 != 0 {
				s.kill(n) // 15 of 20 dead
			}
		}
		blk, pre := dataBlockWithDeletion("to dead and living nodes")
		id := block.Sum(blk)
		ctx := t.Context()
		steps := []struct {
			name   string
			run    func() (int, []error)
			wantOK int
		}{
			{"STORE", func() (int, []error) { return from.dht.requestAll(ctx, cs, Store{Lifetime: 3600, Block: blk}) }, 5},
			{"LIST", func() (int, []error) {
				return from.dht.listAll(ctx, cs, &listCollector{target: id, entries: make(map[block.ID]time.Time)})
			}, 5},
			{"DELETE", func() (int, []error) { return from.dht.requestAll(ctx, cs, Delete{ID: id, Preimage: pre}) }, 5},
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
			func(from *simNode, closest []block.ID) {
				for _, id := range closest[:3] {
					from.dht.table.failed(id)
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
		if f := failuresOf(from.dht, back); f != 0 {
			t.Errorf("the contact that answered has %d failures, want 0", f)
		}
		for _, id := range dead {
			if f := failuresOf(from.dht, id); f != 1 {
				t.Errorf("dead contact %v has %d failures, want the 1 it had (abandoned, not charged again)", id.Short(), f)
			}
		}
	})
}
