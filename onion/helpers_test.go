package onion

import (
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/flowmail/flowmail/identity"
)

// testSeed is FLOWMAIL_SEED when set, else a fixed value; logged so a
// failure can be replayed.
func testSeed(t testing.TB) uint64 {
	t.Helper()
	seed := uint64(20261201)
	if s := os.Getenv("FLOWMAIL_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("FLOWMAIL_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (FLOWMAIL_SEED=%d replays this run)", seed, seed)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("failed with FLOWMAIL_SEED=%d", seed)
		}
	})
	return seed
}

// testNow is a fixed start time for the state machines.
var testNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// testIdentity is identity n, deterministic.
func testIdentity(t testing.TB, n int) *identity.Identity {
	t.Helper()
	var seed [identity.SeedSize]byte
	copy(seed[:], fmt.Sprintf("onion test identity %d", n))
	id, err := identity.FromSeed(seed, 0, time.Unix(1767225600, 0))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// testAddr is a distinct IPv6 /48 per n.
func testAddr(n int) netip.AddrPort {
	var b [16]byte
	b[0] = 0xfd
	b[1], b[2] = byte(n>>8), byte(n)
	b[15] = 1
	return netip.AddrPortFrom(netip.AddrFrom16(b), 4433)
}

// testRelay is a relay with cheap stamps and its identity.
type testRelay struct {
	ident *identity.Identity
	hop   Hop
	relay *Relay
}

const testWork = 2 // cheap stamps: relays in tests demand 2 bits

func newTestRelay(t testing.TB, n int) *testRelay {
	t.Helper()
	id := testIdentity(t, n)
	r, err := NewRelay(RelayConfig{ID: id.ID(), Key: id.EncryptionKey(), MinWork: testWork})
	if err != nil {
		t.Fatal(err)
	}
	return &testRelay{ident: id, hop: Hop{Pubkey: id.Public(), Addr: testAddr(n)}, relay: r}
}

func newTestClient(t testing.TB, n int, seed uint64) *Client {
	t.Helper()
	c, err := NewClient(ClientConfig{
		ID:   testIdentity(t, n).ID(),
		Work: testWork,
		Rand: mrand.New(mrand.NewPCG(seed, uint64(n))),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func hops(rs ...*testRelay) []Hop {
	h := make([]Hop, len(rs))
	for i, r := range rs {
		h[i] = r.hop
	}
	return h
}

// step gives pkt to r, processes it and returns what is due at now.
func step(t testing.TB, r *testRelay, now time.Time, pkt []byte) (Output, error) {
	t.Helper()
	if err := r.relay.Receive(now, pkt); err != nil {
		return Output{}, err
	}
	if ok, err := r.relay.Process(now); !ok || err != nil {
		return Output{}, err
	}
	o, ok := r.relay.Due(now)
	if !ok {
		t.Fatalf("relay %s: nothing due after processing with zero delay", r.hop.ID().Short())
	}
	return o, nil
}

// mustStep is step that fails the test on a drop.
func mustStep(t testing.TB, r *testRelay, now time.Time, pkt []byte) Output {
	t.Helper()
	o, err := step(t, r, now, pkt)
	if err != nil {
		t.Fatalf("relay %s dropped the packet: %v", r.hop.ID().Short(), err)
	}
	return o
}
