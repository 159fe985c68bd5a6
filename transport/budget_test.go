package transport

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/quic-go/quic-go"
)

func group(s string) Group { return Group{Prefix: netip.MustParsePrefix(s)} }

var (
	groupA = group("192.0.2.0/24")
	groupB = group("198.51.100.0/24")
	groupH = group("203.0.113.0/24")
)

// testBudget hands out connections with increasing marks, as the
// transport does.
type testBudget struct {
	*budget
	marks uint64
}

func newTestBudget(lim budgetLimits) *testBudget { return &testBudget{budget: newBudget(lim)} }

func (b *testBudget) add(g Group) *peerConn {
	b.marks++
	pc := &peerConn{dir: Incoming, group: g, seq: b.marks}
	if v := b.admitIn(pc); v != nil {
		panic("unexpected eviction")
	}
	return pc
}

func (b *testBudget) complete(pc *peerConn) {
	b.marks++
	pc.completed, pc.lastDone = true, b.marks
}

func (b *testBudget) admit(g Group) (*peerConn, *peerConn) {
	b.marks++
	pc := &peerConn{dir: Incoming, group: g, seq: b.marks}
	return pc, b.admitIn(pc)
}

func TestBudgetInboundEvictsFromMostRepresentedSource(t *testing.T) {
	b := newTestBudget(budgetLimits{inbound: 4, inboundPerGroup: 3})
	a1, _, _ := b.add(groupA), b.add(groupA), b.add(groupA)
	h1 := b.add(groupH)
	b.complete(h1)
	// Full: a newcomer from another source evicts the oldest connection
	// of source A, which never completed a request; h1 is idle longest
	// of all but its source is the smallest.
	h2, victim := b.admit(groupB)
	if victim != a1 {
		t.Fatalf("evicted %+v, want the oldest connection of the most-represented source", victim)
	}
	if victim.held || !h2.held || len(b.budget.in) != 4 || b.inGroups[groupA] != 2 || b.inGroups[groupB] != 1 {
		t.Errorf("after eviction: %d inbound, groups %v", len(b.budget.in), b.inGroups)
	}
}

func TestBudgetSourceAtCapEvictsItsOwn(t *testing.T) {
	b := newTestBudget(budgetLimits{inbound: 100, inboundPerGroup: 2})
	a1, a2 := b.add(groupA), b.add(groupA)
	b.complete(a2)
	b.complete(a1) // a2 is now idle longest
	b.add(groupH)
	_, victim := b.admit(groupA)
	if victim != a2 {
		t.Fatalf("evicted %+v, want a2 (same source, idle longest)", victim)
	}
	if b.inGroups[groupA] != 2 {
		t.Errorf("source A holds %d, want its cap 2", b.inGroups[groupA])
	}
}

func TestBudgetEvictionOrder(t *testing.T) {
	mk := func(seq uint64, completed bool, lastDone uint64, retired bool) *peerConn {
		return &peerConn{seq: seq, completed: completed, lastDone: lastDone, retired: retired}
	}
	tests := []struct {
		name        string
		first, then *peerConn
	}{
		{"RetiredFirst", mk(9, true, 9, true), mk(1, false, 0, false)},
		{"NeverCompletedBeforeCompleted", mk(9, false, 0, false), mk(1, true, 2, false)},
		{"OldestOfNeverCompleted", mk(1, false, 0, false), mk(2, false, 0, false)},
		{"LongestIdleOfCompleted", mk(5, true, 6, false), mk(1, true, 7, false)},
	}
	for _, tt := range tests {
		if !evictsBefore(tt.first, tt.then) || evictsBefore(tt.then, tt.first) {
			t.Errorf("%s: order wrong", tt.name)
		}
	}
}

func TestBudgetOutboundEvictsOnlyIdle(t *testing.T) {
	b := newBudget(budgetLimits{outbound: 2})
	conns := make([]*peerConn, 2)
	for i := range conns {
		if v, err := b.reserveOut(); v != nil || err != nil {
			t.Fatal(v, err)
		}
		conns[i] = &peerConn{dir: Outgoing, seq: uint64(i + 1), completed: true, lastDone: uint64(10 - i)}
		b.addOut(conns[i])
	}
	conns[1].inflight = 1 // conns[1] is idle longest, but busy
	v, err := b.reserveOut()
	if err != nil || v != conns[0] {
		t.Fatalf("reserveOut: evicted %v, %v; want the idle connection", v, err)
	}
	if _, err := b.reserveOut(); !errors.Is(err, errBudget) {
		t.Errorf("every connection busy or dialing: %v, want refusal", err)
	}
	b.releaseOut()
	b.remove(conns[1])
	if b.out != 0 || len(b.outConns) != 0 {
		t.Errorf("after release: %d places, %d connections", b.out, len(b.outConns))
	}
}

func TestBudgetInboundNeverTakesOutboundRoom(t *testing.T) {
	b := newTestBudget(budgetLimits{inbound: 2, inboundPerGroup: 10, outbound: 1})
	for range 10 {
		b.admit(groupA)
	}
	if v, err := b.reserveOut(); v != nil || err != nil {
		t.Errorf("dial with a full inbound share: %v, %v", v, err)
	}
}

func TestBudgetPreHello(t *testing.T) {
	pre := func(g Group, seq uint64) *preConn { return &preConn{group: g, seq: seq, ctx: t.Context()} }
	reserve := func(b *budget, p *preConn) {
		t.Helper()
		if v, err := b.reservePre(p); v != nil || err != nil {
			t.Fatalf("reservePre(%v): %v, %v", p.seq, v, err)
		}
	}
	accept := func(b *budget, p *preConn) *preConn {
		t.Helper()
		v, ok := b.acceptPre(p, new(quic.Conn))
		if !ok {
			t.Fatalf("acceptPre(%v): no place", p.seq)
		}
		return v
	}
	b := newBudget(budgetLimits{handshakes: 2, handshakesPerGroup: 2, quicHandshakes: 3})
	a1, a2 := pre(groupA, 1), pre(groupA, 2)
	reserve(b, a1)
	reserve(b, a2)
	accept(b, a1)
	// Source A at its cap: its oldest connection quic-go handed over
	// gives way.
	a3 := pre(groupA, 3)
	if v, err := b.reservePre(a3); v != a1 || err != nil {
		t.Fatalf("source at cap: evicted %v, %v; want a1", v, err)
	}
	if _, ok := b.acceptPre(a1, new(quic.Conn)); ok {
		t.Error("an evicted connection was accepted")
	}
	// Again: only connections in their QUIC handshake are left.
	if v, err := b.reservePre(pre(groupA, 4)); !errors.Is(err, errBudget) || v != nil {
		t.Fatalf("source at cap, all in their QUIC handshake: %v, %v; want refusal", v, err)
	}
	// Three QUIC handshakes in progress: a newcomer of any source waits.
	h1 := pre(groupH, 5)
	reserve(b, h1)
	if v, err := b.reservePre(pre(groupB, 6)); !errors.Is(err, errBudget) || v != nil {
		t.Fatalf("QUIC handshakes at cap: %v, %v; want refusal", v, err)
	}
	// Past their QUIC handshake, at most two wait for their HELLO: the
	// oldest of the most-represented source gives way.
	if v := accept(b, a2); v != nil {
		t.Fatalf("evicted %v with room", v.seq)
	}
	if v := accept(b, h1); v != nil {
		t.Fatalf("evicted %v with room", v.seq)
	}
	if v := accept(b, a3); v != a2 {
		t.Fatalf("pre-HELLO budget full: evicted %v, want a2", v)
	}
	// A connection quic-go closed before handing it over is swept.
	ctx, cancel := context.WithCancel(t.Context())
	b1 := &preConn{group: groupB, seq: 7, ctx: ctx}
	reserve(b, b1)
	cancel()
	reserve(b, pre(groupB, 8))
	if b1.held || b.preCount() != 3 || b.preGroups[groupB] != 1 {
		t.Errorf("after sweeping: %d held, source B %d", b.preCount(), b.preGroups[groupB])
	}
}

func TestBudgetHandlers(t *testing.T) {
	b := newBudget(budgetLimits{handlers: 3, handlersPerGroup: 2})
	for _, g := range []Group{groupA, groupA, groupH} {
		if err := b.acquireHandler(g); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.acquireHandler(groupB); !errors.Is(err, errBudget) {
		t.Errorf("node-wide cap: %v", err)
	}
	b.releaseHandler(groupH)
	if err := b.acquireHandler(groupA); !errors.Is(err, errBudget) {
		t.Errorf("source cap: %v", err)
	}
	if err := b.acquireHandler(groupB); err != nil {
		t.Errorf("another source with room: %v", err)
	}
}

func TestGroups(t *testing.T) {
	tests := []struct {
		addr       string
		def, byPfx string
	}{
		{"192.0.2.77:4433", "192.0.2.0/24", "192.0.2.0/24"},
		{"[::ffff:192.0.2.77]:4433", "192.0.2.0/24", "192.0.2.0/24"},
		{"[2001:db8:1:2:3::4]:4433", "2001:db8:1::/48", "2001:db8:1::/48"},
		{"127.0.0.1:4433", "127.0.0.1/32 port 4433", "127.0.0.0/24"},
		{"[::1]:4433", "::1/128 port 4433", "::/48"},
	}
	for _, tt := range tests {
		a := netip.MustParseAddrPort(tt.addr)
		if got := DefaultGroup(a).String(); got != tt.def {
			t.Errorf("DefaultGroup(%v) = %s, want %s", a, got, tt.def)
		}
		if got := GroupByPrefix(a).String(); got != tt.byPfx {
			t.Errorf("GroupByPrefix(%v) = %s, want %s", a, got, tt.byPfx)
		}
	}
}

func TestCheckPeerAddr(t *testing.T) {
	tests := []struct {
		addr     string
		loopback bool
		ok       bool
	}{
		{"192.0.2.1:4433", false, true},
		{"[2001:db8::1]:4433", false, true},
		{"[::ffff:192.0.2.1]:4433", false, true},
		{"192.0.2.1:0", false, false},
		{"0.0.0.0:4433", false, false},
		{"0.0.0.1:4433", false, false},
		{"[::ffff:0.0.0.0]:4433", false, false},
		{"[::]:4433", false, false},
		{"169.254.1.1:4433", false, false},
		{"[fe80::1]:4433", false, false},
		{"[fe80::1%eth0]:4433", false, false},
		{"224.0.0.1:4433", false, false},
		{"[ff02::1]:4433", false, false},
		{"255.255.255.255:4433", false, false},
		{"127.0.0.1:4433", false, false},
		{"127.0.0.1:4433", true, true},
		{"127.255.255.255:4433", true, true},
		{"[::1]:4433", true, true},
	}
	for _, tt := range tests {
		err := CheckPeerAddr(netip.MustParseAddrPort(tt.addr), tt.loopback)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrAddrUnusable)) {
			t.Errorf("CheckPeerAddr(%s, loopback %v) = %v, want ok=%v", tt.addr, tt.loopback, err, tt.ok)
		}
	}
	if err := CheckPeerAddr(netip.AddrPort{}, true); !errors.Is(err, ErrAddrUnusable) {
		t.Errorf("zero address: %v", err)
	}
}
