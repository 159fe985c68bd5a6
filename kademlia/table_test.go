package kademlia

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/internal/testseed"
	"github.com/flowmail/flowmail/transport"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// idInBucket returns an ID that shares exactly i (< 248) leading bits
// with self, with tail mixed into the last byte so IDs differ.
func idInBucket(self block.ID, i int, tail byte) block.ID {
	id := self
	id[i/8] ^= 0x80 >> (i % 8)
	id[block.IDSize-1] ^= tail
	return id
}

// addrN returns a distinct address in its own /24 for every n.
func addrN(n int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(n >> 8), byte(n), 1}), 4433)
}

func newTestTable(self block.ID, k int) *table {
	return newTable(self, tableLimits{k: k, cache: k, maxFailures: 3, bucketIP: -1, tableIP: -1}, time.Time{})
}

func liveIDs(t *table, bucket int) []block.ID {
	t.mu.Lock()
	defer t.mu.Unlock()
	var ids []block.ID
	for _, e := range t.buckets[bucket].live {
		ids = append(ids, e.ID)
	}
	return ids
}

func TestTableNeverAddsSelf(t *testing.T) {
	self := testID(1)
	tb := newTestTable(self, K)
	if tb.seen(transport.Contact{ID: self, Addr: addrN(1)}, t0) || tb.len() != 0 {
		t.Fatal("the table took its own ID")
	}
}

func TestTableRefusesUnusableAddresses(t *testing.T) {
	self := testID(1)
	tb := newTestTable(self, K)
	for _, a := range []netip.AddrPort{{}, netip.MustParseAddrPort("0.0.0.0:4433"), netip.MustParseAddrPort("10.0.0.1:0"), netip.MustParseAddrPort("[ff02::1]:4433")} {
		if tb.seen(transport.Contact{ID: idInBucket(self, 3, 1), Addr: a}, t0) {
			t.Errorf("took a contact at %v", a)
		}
	}
}

func TestTableFullBucketEvictsOnlyAfterFailedPing(t *testing.T) {
	const k = 4
	self := testID(1)
	tb := newTestTable(self, k)
	var ids []block.ID
	for i := range k {
		id := idInBucket(self, 5, byte(i+1))
		ids = append(ids, id)
		if !tb.seen(transport.Contact{ID: id, Addr: addrN(i)}, t0.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("contact %d not added to a bucket with room", i)
		}
	}
	newcomer := idInBucket(self, 5, 0x40)
	if tb.seen(transport.Contact{ID: newcomer, Addr: addrN(100)}, t0.Add(time.Minute)) {
		t.Fatal("a full bucket took a newcomer without a liveness check")
	}
	checks := tb.pendingChecks()
	if len(checks) != 1 || checks[0].ID != ids[0] {
		t.Fatalf("pending checks %v, want the least recently seen contact %v", checks, ids[0].Short())
	}
	if again := tb.pendingChecks(); len(again) != 0 {
		t.Fatalf("the same check was handed out twice: %v", again)
	}
	// The old contact answers: it stays (now most recently seen), and the
	// newcomer keeps waiting.
	tb.seen(checks[0], t0.Add(2*time.Minute))
	tb.checked(checks[0], true)
	if got := liveIDs(tb, 5); !slices.Contains(got, ids[0]) || slices.Contains(got, newcomer) || got[len(got)-1] != ids[0] {
		t.Fatalf("after a good ping the bucket is %v", got)
	}
	// Another newcomer arrives: now ids[1] is the least recently seen.
	second := idInBucket(self, 5, 0x41)
	tb.seen(transport.Contact{ID: second, Addr: addrN(101)}, t0.Add(3*time.Minute))
	checks = tb.pendingChecks()
	if len(checks) != 1 || checks[0].ID != ids[1] {
		t.Fatalf("pending checks %v, want %v", checks, ids[1].Short())
	}
	tb.checked(checks[0], false)
	got := liveIDs(tb, 5)
	if slices.Contains(got, ids[1]) {
		t.Fatal("a contact that failed its liveness check is still live")
	}
	if !slices.Contains(got, second) || slices.Contains(got, newcomer) {
		t.Fatalf("the most recent cached contact should replace it, bucket is %v", got)
	}
}

func TestTableRemovesAfterRepeatedFailures(t *testing.T) {
	self := testID(1)
	tb := newTestTable(self, K)
	c := transport.Contact{ID: idInBucket(self, 2, 1), Addr: addrN(1)}
	tb.seen(c, t0)
	tb.failed(c)
	tb.failed(c)
	if tb.len() != 1 {
		t.Fatal("removed before MaxFailures consecutive failures")
	}
	tb.seen(c, t0)
	tb.failed(c)
	tb.failed(c)
	if tb.len() != 1 {
		t.Fatal("an answer did not reset the failure count")
	}
	tb.failed(c)
	if tb.len() != 0 {
		t.Fatal("still there after MaxFailures consecutive failures")
	}
}

// TestTableFailureEvictsAtOnceWhenReplacementWaits: a failed request
// gives a waiting newcomer the place at once; a stall, which may yet be
// answered, only after maxFailures.
func TestTableFailureEvictsAtOnceWhenReplacementWaits(t *testing.T) {
	const k = 2
	self := testID(1)
	a, b, c := idInBucket(self, 0, 1), idInBucket(self, 0, 2), idInBucket(self, 0, 3)
	tests := map[string]struct {
		charge func(*table, transport.Contact)
		times  int
		want   []block.ID
	}{
		"failure":      {(*table).failed, 1, []block.ID{a, c}},
		"one stall":    {(*table).stalled, 1, []block.ID{a, b}},
		"three stalls": {(*table).stalled, 3, []block.ID{a, c}},
		"two stalls":   {(*table).stalled, 2, []block.ID{a, b}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tb := newTestTable(self, k)
			tb.seen(transport.Contact{ID: a, Addr: addrN(1)}, t0)
			tb.seen(transport.Contact{ID: b, Addr: addrN(2)}, t0)
			tb.seen(transport.Contact{ID: c, Addr: addrN(3)}, t0) // cached
			for range tc.times {
				tc.charge(tb, transport.Contact{ID: b, Addr: addrN(2)})
			}
			if got := liveIDs(tb, 0); !slices.Equal(got, tc.want) {
				t.Fatalf("bucket %v, want %v", got, tc.want)
			}
			if !tb.failing(transport.Contact{ID: b, Addr: addrN(2)}) {
				t.Error("the charged contact is not failing")
			}
		})
	}
}

func TestTableIPGroupLimits(t *testing.T) {
	self := testID(1)
	cases := []struct {
		name             string
		bucketIP, table  int
		addrs            []string
		bucket           int // all contacts go to this bucket unless spread
		spread           bool
		wantLive         int
		wantRefusedIndex []int
	}{
		{name: "two per bucket from one IPv4 /24", bucketIP: 2, table: -1, addrs: []string{"192.0.2.1:1", "192.0.2.2:1", "192.0.2.3:1", "192.0.3.1:1"}, bucket: 0, wantLive: 3, wantRefusedIndex: []int{2}},
		{name: "two per bucket from one IPv6 /48", bucketIP: 2, table: -1, addrs: []string{"[2001:db8:1:1::1]:1", "[2001:db8:1:2::1]:1", "[2001:db8:1:3::1]:1", "[2001:db8:2::1]:1"}, bucket: 0, wantLive: 3, wantRefusedIndex: []int{2}},
		{name: "IPv4-mapped counts as IPv4", bucketIP: 1, table: -1, addrs: []string{"192.0.2.1:1", "[::ffff:192.0.2.9]:1"}, bucket: 0, wantLive: 1, wantRefusedIndex: []int{1}},
		{name: "table limit across buckets", bucketIP: -1, table: 3, addrs: []string{"192.0.2.1:1", "192.0.2.2:1", "192.0.2.3:1", "192.0.2.4:1"}, spread: true, wantLive: 3, wantRefusedIndex: []int{3}},
		{name: "limits off", bucketIP: -1, table: -1, addrs: []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}, bucket: 0, wantLive: 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTable(self, tableLimits{k: K, cache: K, maxFailures: 3, bucketIP: tc.bucketIP, tableIP: tc.table}, time.Time{})
			for i, a := range tc.addrs {
				bucket := tc.bucket
				if tc.spread {
					bucket = i
				}
				added := tb.seen(transport.Contact{ID: idInBucket(self, bucket, byte(i+1)), Addr: netip.MustParseAddrPort(a)}, t0)
				if refused := slices.Contains(tc.wantRefusedIndex, i); added == refused {
					t.Errorf("contact %d at %s: added=%v", i, a, added)
				}
			}
			if tb.len() != tc.wantLive {
				t.Fatalf("%d live contacts, want %d", tb.len(), tc.wantLive)
			}
		})
	}
}

// TestTableIPGroupCountsFollowTheTable: a group's count falls when a
// contact leaves or moves to another group, so others of it may enter;
// after any mix of arrivals, moves, failures and removals the table's
// group words are those of its live contacts.
func TestTableIPGroupCountsFollowTheTable(t *testing.T) {
	self := testID(1)
	tb := newTable(self, tableLimits{k: K, cache: K, maxFailures: 1, bucketIP: -1, tableIP: 2}, time.Time{})
	at := func(bucket int, tail byte, addr string) transport.Contact {
		return transport.Contact{ID: idInBucket(self, bucket, tail), Addr: netip.MustParseAddrPort(addr)}
	}
	a, b, c := at(0, 1, "192.0.2.1:1"), at(1, 2, "192.0.2.2:1"), at(2, 3, "192.0.2.3:1")
	for _, x := range []transport.Contact{a, b} {
		if !tb.seen(x, t0) {
			t.Fatalf("%v refused with room in its group", x)
		}
	}
	if tb.seen(c, t0) {
		t.Fatal("a third contact of one /24 entered a table that allows 2")
	}
	tb.remove(a.ID)
	if !tb.seen(c, t0) {
		t.Fatal("refused after a contact of its group left")
	}
	b.Addr = netip.MustParseAddrPort("198.51.100.1:1") // b moves out of the group
	if !tb.seen(b, t0) {
		t.Fatal("a contact moving to an empty group was refused")
	}
	if d := at(3, 4, "192.0.2.4:1"); !tb.seen(d, t0) {
		t.Fatal("refused although the contact that moved no longer counts in its group")
	}
	if e := at(4, 5, "192.0.2.5:1"); tb.seen(e, t0) {
		t.Fatal("a third contact of the group entered after the move")
	}

	rng := testseed.Rand(t)
	tb = newTable(self, tableLimits{k: 4, cache: 2, maxFailures: 1, bucketIP: 2, tableIP: 5}, time.Time{})
	var met []transport.Contact
	for range 3000 {
		switch op := rng.IntN(10); {
		case op < 6 || len(met) == 0:
			x := transport.Contact{ID: idInBucket(self, rng.IntN(6), byte(rng.IntN(40))), Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, byte(rng.IntN(4)), byte(rng.IntN(250) + 1)}), 1)}
			tb.seen(x, t0)
			met = append(met, x)
		case op < 8:
			tb.failed(met[rng.IntN(len(met))])
		default:
			tb.remove(met[rng.IntN(len(met))].ID)
		}
		var want []uint64
		for i := range tb.buckets {
			for _, e := range tb.buckets[i].live {
				want = append(want, tb.liveWord(&e))
			}
		}
		got := slices.Clone(tb.groups)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("group words %x, live contacts' %x", got, want)
		}
	}
}

// TestTableClosestIsExact compares closest with sorting every contact, for
// targets near and far from the own ID and the own ID itself.
func TestTableClosestIsExact(t *testing.T) {
	rng := testseed.Rand(t)
	randomID := func() block.ID {
		var id block.ID
		for i := range id {
			id[i] = byte(rng.Uint32())
		}
		return id
	}
	self := randomID()
	tb := newTestTable(self, K)
	var all []transport.Contact
	for i := range 3000 {
		var id block.ID
		if i%3 == 0 {
			// Crowd the deep buckets too.
			id = idInBucket(self, 8+rng.IntN(12), byte(rng.Uint32()))
			id[block.IDSize-2] = byte(rng.Uint32())
		} else {
			id = randomID()
		}
		c := transport.Contact{ID: id, Addr: addrN(i)}
		if tb.seen(c, t0) {
			all = append(all, c)
		}
	}
	targets := []block.ID{self, idInBucket(self, 0, 9), idInBucket(self, 10, 9)}
	for range 200 {
		targets = append(targets, randomID())
	}
	for _, c := range all[:20] {
		targets = append(targets, c.ID)
	}
	for _, target := range targets {
		for _, n := range []int{1, 7, K, 3 * K} {
			want := slices.Clone(all)
			sortByDistance(want, target)
			want = want[:min(n, len(want))]
			got := tb.closest(target, n, block.ID{})
			if !slices.Equal(got, want) {
				t.Fatalf("closest(%v, %d) differs from brute force", target.Short(), n)
			}
		}
	}
	// except leaves one contact out.
	got := tb.closest(all[0].ID, 1, all[0].ID)
	if len(got) != 1 || got[0].ID == all[0].ID {
		t.Fatalf("closest with except returned %v", got)
	}
}

func TestTableStaleBucketsStopAtNeighbourhood(t *testing.T) {
	const k = 3
	self := testID(1)
	tb := newTestTable(self, k)
	for i, b := range []int{0, 0, 1, 4, 6, 6, 9} {
		tb.seen(transport.Contact{ID: idInBucket(self, b, byte(i+1)), Addr: addrN(i)}, t0)
	}
	// The 3 closest to self are in buckets 9, 6, 6: buckets 0 to 6 may
	// hold nodes not yet known.
	if got, want := tb.staleBuckets(t0), []int{0, 1, 2, 3, 4, 5, 6}; !slices.Equal(got, want) {
		t.Fatalf("stale buckets %v, want %v", got, want)
	}
	tb.lookedUp(idInBucket(self, 4, 1), t0.Add(time.Second))
	if got := tb.staleBuckets(t0.Add(time.Second)); slices.Contains(got, 4) {
		t.Fatalf("bucket 4 was just looked up but is stale: %v", got)
	}
}

func TestTableFollowsAMovedPeer(t *testing.T) {
	self := testID(1)
	tb := newTestTable(self, K)
	id := idInBucket(self, 3, 1)
	tb.seen(transport.Contact{ID: id, Addr: addrN(1)}, t0)
	tb.seen(transport.Contact{ID: id, Addr: addrN(2)}, t0.Add(time.Second))
	cs := tb.contacts()
	if len(cs) != 1 || cs[0].Addr != addrN(2) {
		t.Fatalf("contacts %v, want one at the new address", cs)
	}
}

func TestRandomIDInBucket(t *testing.T) {
	d := &DHT{cfg: Config{ID: testID(3)}, rng: rand.New(rand.NewPCG(3, 4))}
	for i := range numBuckets {
		for range 4 {
			if got := block.CommonPrefixLen(d.randomIDInBucket(i), d.cfg.ID); got != i {
				t.Fatalf("random ID for bucket %d shares %d bits", i, got)
			}
		}
	}
}

// TestTableRemembersFailingContacts: a contact is failing from its first
// failure, stays so once dropped, and is forgiven when seen again; a
// contact never in the table that fails is remembered too.
func TestTableRemembersFailingContacts(t *testing.T) {
	self := testID(1)
	tb := newTestTable(self, K)
	c := transport.Contact{ID: idInBucket(self, 4, 1), Addr: addrN(1)}
	stranger := transport.Contact{ID: idInBucket(self, 9, 2), Addr: addrN(2)}
	tb.seen(c, t0)
	steps := []struct {
		do   func()
		want bool
		why  string
	}{
		{func() {}, false, "seen, never failed"},
		{func() { tb.failed(c) }, true, "one failure"},
		{func() { tb.failed(c); tb.failed(c) }, true, "dropped after three"},
		{func() { tb.seen(c, t0) }, false, "seen again"},
	}
	for _, st := range steps {
		st.do()
		if got := tb.failing(c); got != st.want {
			t.Errorf("%s: failing %v, want %v", st.why, got, st.want)
		}
	}
	if tb.failing(stranger) {
		t.Error("a stranger is failing before any request")
	}
	tb.failed(stranger)
	if !tb.failing(stranger) {
		t.Error("a stranger whose request failed is not failing")
	}
}

// TestTableChargesOnlyTheAddressItHolds: a failure at an address the
// table does not hold for the ID (a third party's) costs the entry
// nothing, live or cached; the held address, however encoded, and a
// fault of the peer itself (no address) do.
func TestTableChargesOnlyTheAddressItHolds(t *testing.T) {
	self := testID(1)
	tb := newTestTable(self, 1)
	live := transport.Contact{ID: idInBucket(self, 3, 1), Addr: addrN(1)}
	cached := transport.Contact{ID: idInBucket(self, 3, 2), Addr: addrN(2)}
	elsewhere := func(c transport.Contact) transport.Contact { return transport.Contact{ID: c.ID, Addr: addrN(99)} }
	tb.seen(live, t0)
	tb.seen(cached, t0) // the bucket holds one: it waits in the cache
	for range 3 {
		tb.failed(elsewhere(live))
		tb.failed(elsewhere(cached))
	}
	if got := tb.contacts(); len(got) != 1 || got[0].Contact != live || got[0].Failures != 0 {
		t.Fatalf("after failures at other addresses the table is %+v, want %v with no failure", got, live)
	}
	if tb.failing(live) || !tb.failing(elsewhere(live)) {
		t.Error("failing should tell the held address from the other one")
	}
	mapped := transport.Contact{ID: live.ID, Addr: netip.AddrPortFrom(netip.AddrFrom16(live.Addr.Addr().As16()), live.Addr.Port())}
	tb.stalled(mapped)
	tb.stalled(transport.Contact{ID: live.ID})
	if got := tb.contacts(); len(got) != 1 || got[0].Failures != 2 {
		t.Fatalf("a stall at the held address (mapped) and one of the peer itself: table %+v, want 2 failures", got)
	}
	// The cached contact survived the failures at the other address: it
	// takes the place of the live one when that one fails.
	tb.failed(live)
	if got := liveIDs(tb, 3); !slices.Equal(got, []block.ID{cached.ID}) {
		t.Fatalf("bucket %v, want the cached contact %v", got, cached.ID.Short())
	}
}

func TestTableForgetsOldestDroppedBeyondMemory(t *testing.T) {
	var d droppedSet
	id := func(i int) transport.Contact {
		return transport.Contact{ID: block.ID{0: byte(i >> 8), 1: byte(i), 31: 1}, Addr: addrN(i)}
	}
	d.add(id(0))
	d.remove(id(0)) // seen again: its entry lingers in the order
	d.add(id(0))    // and fails again: a new entry
	for i := 1; i <= droppedMemory; i++ {
		d.add(id(i))
	}
	if len(d.ids) != droppedMemory || len(d.order) != droppedMemory {
		t.Fatalf("%d IDs in %d entries, want %d of each", len(d.ids), len(d.order), droppedMemory)
	}
	if d.has(id(0)) {
		t.Error("the oldest ID is still remembered")
	}
	if !d.has(id(1)) || !d.has(id(droppedMemory)) {
		t.Error("a newer ID was forgotten")
	}
}

// TestTableAnswersNameOnlyFreshUsableContacts: a NODES answer names
// contacts verified within ContactFreshness whose last request did not
// fail, never the requester, and loopback contacts only to a requester
// on loopback.
func TestTableAnswersNameOnlyFreshUsableContacts(t *testing.T) {
	self := testID(1)
	tb := newTestTable(self, K)
	old := transport.Contact{ID: idInBucket(self, 1, 1), Addr: addrN(1)}
	recent := transport.Contact{ID: idInBucket(self, 2, 1), Addr: addrN(2)}
	failing := transport.Contact{ID: idInBucket(self, 3, 1), Addr: addrN(3)}
	local := transport.Contact{ID: idInBucket(self, 4, 1), Addr: netip.MustParseAddrPort("127.0.0.1:4001")}
	requester := transport.Peer{ID: idInBucket(self, 5, 1), Addr: addrN(5)}
	tb.seen(old, t0)
	tb.seen(recent, t0.Add(10*time.Minute))
	tb.seen(failing, t0.Add(10*time.Minute))
	tb.failed(failing)
	tb.seen(local, t0.Add(10*time.Minute))
	tb.seen(transport.Contact{ID: requester.ID, Addr: requester.Addr}, t0.Add(10*time.Minute))
	now := t0.Add(ContactFreshness + time.Second)

	if got := tb.closestAnswer(self, K, requester, now); !slices.Equal(got, []transport.Contact{recent}) {
		t.Errorf("answer to a requester off loopback: %v, want only %v", got, recent)
	}
	onLoopback := transport.Peer{ID: requester.ID, Addr: netip.MustParseAddrPort("127.0.0.1:4005")}
	if got := tb.closestAnswer(self, K, onLoopback, now); !slices.Equal(got, []transport.Contact{local, recent}) {
		t.Errorf("answer to a requester on loopback: %v, want %v and %v", got, recent, local)
	}
	// The node's own lookups still ask every live contact.
	if got := tb.closest(self, K, block.ID{}); len(got) != 5 {
		t.Errorf("closest for the own lookups: %d contacts, want 5", len(got))
	}
	if got := tb.stale(t0.Add(5*time.Minute), K); !slices.Equal(got, []transport.Contact{old}) {
		t.Errorf("stale contacts %v, want %v", got, old)
	}
}

// TestGroupWordsAgreeWithIPGroup: the table counts a contact at a in the
// group of b exactly when ipGroup puts them together (and a zoned address,
// which netip.Prefix.Contains never matches, in none).
func TestGroupWordsAgreeWithIPGroup(t *testing.T) {
	addrs := []string{"192.0.2.1", "192.0.2.200", "192.0.3.1", "::ffff:192.0.2.7", "2001:db8::1", "2001:db8:0:1::1", "2001:db8:1::1", "127.0.0.1", "::1", "0.0.0.0", "::"}
	rng := testseed.Rand(t)
	for range 200 {
		var b16 [16]byte
		for i := range b16 {
			b16[i] = byte(rng.IntN(3)) // few values, so that groups collide
		}
		addrs = append(addrs, netip.AddrFrom16(b16).String(), netip.AddrFrom4([4]byte(b16[:4])).String())
	}
	for _, x := range addrs {
		for _, y := range addrs {
			a, b := netip.MustParseAddr(x), netip.MustParseAddr(y)
			got := addrGroupKey(a) != 0 && addrGroupKey(a) == groupKey(ipGroup(b))
			if want := ipGroup(a).IsValid() && ipGroup(a) == ipGroup(b); got != want {
				t.Fatalf("the group words put %v in the group of %v: %v; ipGroup says %v", a, b, got, want)
			}
		}
	}
	if zoned := netip.MustParseAddr("fe80::1%eth0"); addrGroupKey(zoned) != 0 {
		t.Errorf("a zoned address has group word %x; netip.Prefix.Contains matches it to no group", addrGroupKey(zoned))
	}
	if groupKey(netip.Prefix{}) != 0 || addrGroupKey(netip.Addr{}) != 0 {
		t.Error("no group must have the word 0")
	}
}
