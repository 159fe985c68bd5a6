package onion

import (
	"bytes"
	"errors"
	mrand "math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
)

// contactsIn returns n contacts whose addresses fall in groups groups
// (IPv4 /16s, several contacts per group when n > groups).
func contactsIn(t *testing.T, n, groups int) []Hop {
	t.Helper()
	cs := make([]Hop, n)
	for i := range cs {
		g := i % groups
		ip := netip.AddrFrom4([4]byte{10, byte(g), byte(i / groups), 1})
		cs[i] = Hop{Pubkey: testIdentity(t, 1000+i).Public(), Addr: netip.AddrPortFrom(ip, 4433)}
	}
	return cs
}

func TestPathHoldsOneRelayPerGroup(t *testing.T) {
	rnd := mrand.New(mrand.NewPCG(testSeed(t), 1))
	cs := contactsIn(t, 40, 5) // 8 relays in each of 5 /16s
	for range 200 {
		p, err := ForwardPath(rnd, cs, block.ID{0xff}, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[netip.Prefix]bool{}
		for _, h := range p {
			g := PathGroup(h.Addr.Addr())
			if seen[g] {
				t.Fatalf("path %v holds two relays of %v", addrs(p), g)
			}
			seen[g] = true
		}
	}
}

func TestPathGroups(t *testing.T) {
	for _, c := range []struct{ a, b string }{
		{"10.1.2.3", "10.1.0.0/16"},
		{"::ffff:10.1.2.3", "10.1.0.0/16"},
		{"2001:db8:1:2::5", "2001:db8:1::/48"},
	} {
		if got := PathGroup(netip.MustParseAddr(c.a)); got != netip.MustParsePrefix(c.b) {
			t.Errorf("PathGroup(%s) = %v, want %s", c.a, got, c.b)
		}
	}
}

func addrs(p []Hop) []netip.AddrPort {
	var out []netip.AddrPort
	for _, h := range p {
		out = append(out, h.Addr)
	}
	return out
}

func TestPathNeverUsesTheClosestToTheTarget(t *testing.T) {
	rnd := mrand.New(mrand.NewPCG(testSeed(t), 2))
	const k = 8
	cs := contactsIn(t, k+4, k+4) // every contact its own group: only the rule excludes
	target := cs[0].ID()          // the target's own node is the closest
	closest := Closest(cs, target, k)
	if len(closest) != k || !closest[target] {
		t.Fatalf("Closest gave %d IDs", len(closest))
	}
	guard := &cs[1]
	for range 100 {
		for _, choose := range []func(*mrand.Rand, []Hop, block.ID, int, *Hop) ([]Hop, error){ForwardPath, ReplyPath} {
			p, err := choose(rnd, cs, target, k, guard)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range p {
				if closest[h.ID()] {
					t.Fatalf("path uses %s, one of the %d closest to the target", h.ID().Short(), k)
				}
			}
		}
	}
}

func TestPathsStartAndEndAtTheGuard(t *testing.T) {
	rnd := mrand.New(mrand.NewPCG(testSeed(t), 3))
	cs := contactsIn(t, 30, 30)
	guard := cs[7]
	target := block.Xor(guard.ID(), block.ID{0x80}) // far from the guard
	for range 50 {
		f, err := ForwardPath(rnd, cs, target, 4, &guard)
		if err != nil {
			t.Fatal(err)
		}
		r, err := ReplyPath(rnd, cs, target, 4, &guard)
		if err != nil {
			t.Fatal(err)
		}
		if f[0].ID() != guard.ID() || r[Hops-1].ID() != guard.ID() {
			t.Fatalf("forward starts at %s, reply ends at %s, guard is %s", f[0].ID().Short(), r[Hops-1].ID().Short(), guard.ID().Short())
		}
	}
	// A guard among the closest to the target is not used for it.
	near := guard.ID()
	for range 20 {
		f, err := ForwardPath(rnd, cs, near, 4, &guard)
		if err != nil {
			t.Fatal(err)
		}
		if f[0].ID() == guard.ID() {
			t.Fatal("guard used for a target it stores")
		}
	}
}

func TestPathNeedsEnoughGroups(t *testing.T) {
	rnd := mrand.New(mrand.NewPCG(testSeed(t), 4))
	cs := contactsIn(t, 20, 2)
	if _, err := ForwardPath(rnd, cs, block.ID{}, 0, nil); !errors.Is(err, ErrNoPath) {
		t.Fatalf("two groups gave %v, want ErrNoPath", err)
	}
}

func TestGuardKeptForItsLifetime(t *testing.T) {
	rnd := mrand.New(mrand.NewPCG(testSeed(t), 5))
	cs := contactsIn(t, 10, 10)
	g, changed, err := KeepGuard(rnd, nil, cs, testNow)
	if err != nil || !changed {
		t.Fatalf("first guard: %v %v", changed, err)
	}
	life := g.Expires.Sub(g.Chosen)
	if life < GuardMinLifetime || life > GuardMaxLifetime {
		t.Fatalf("guard lifetime %v outside %v..%v", life, GuardMinLifetime, GuardMaxLifetime)
	}
	for _, at := range []time.Duration{time.Hour, GuardMinLifetime - time.Second, life - time.Second} {
		g2, changed, err := KeepGuard(rnd, g, cs, g.Chosen.Add(at))
		if err != nil || changed || g2 != g {
			t.Fatalf("after %v the guard changed (%v, %v)", at, changed, err)
		}
	}
	g2, changed, err := KeepGuard(rnd, g, cs, g.Expires)
	if err != nil || !changed || g2.Hop.ID() == g.Hop.ID() {
		t.Fatalf("at expiry: changed %v, same relay %v, %v", changed, g2 != nil && g2.Hop.ID() == g.Hop.ID(), err)
	}
}

func TestGuardReplacedOnlyAfterFailingForTheGrace(t *testing.T) {
	rnd := mrand.New(mrand.NewPCG(testSeed(t), 6))
	cs := contactsIn(t, 10, 10)
	g, _, err := KeepGuard(rnd, nil, cs, testNow)
	if err != nil {
		t.Fatal(err)
	}
	failed := testNow.Add(time.Hour)
	g.Failed(failed)
	g.Failed(failed.Add(time.Hour)) // later failures keep the first time
	at := failed.Add(GuardGrace - time.Second)
	if g.Usable(at) {
		t.Fatal("a failing guard starts paths")
	}
	if g2, changed, _ := KeepGuard(rnd, g, cs, at); changed || g2 != g {
		t.Fatal("guard replaced within the grace")
	}
	g.Answered()
	if !g.Usable(at) {
		t.Fatal("guard not usable after it answered")
	}
	g.Failed(at)
	if g2, changed, _ := KeepGuard(rnd, g, cs, at.Add(GuardGrace)); !changed || g2.Hop.ID() == g.Hop.ID() {
		t.Fatal("guard kept after failing for the grace")
	}
}

func TestGuardFileRoundTrip(t *testing.T) {
	rnd := mrand.New(mrand.NewPCG(testSeed(t), 7))
	cs := contactsIn(t, 3, 3)
	g, _, err := KeepGuard(rnd, nil, cs, testNow)
	if err != nil {
		t.Fatal(err)
	}
	g.Failed(testNow.Add(time.Minute))
	b, err := EncodeGuard(g)
	if err != nil {
		t.Fatal(err)
	}
	g2, err := ParseGuard(b)
	if err != nil {
		t.Fatal(err)
	}
	if g2.Hop.ID() != g.Hop.ID() || g2.Hop.Addr != g.Hop.Addr || !g2.Chosen.Equal(g.Chosen) ||
		!g2.Expires.Equal(g.Expires) || !g2.FailingSince.Equal(g.FailingSince) {
		t.Fatalf("round trip: %+v, want %+v", g2, g)
	}
	b2, _ := EncodeGuard(g2)
	if !bytes.Equal(b, b2) {
		t.Fatal("re-encoding differs")
	}
}
