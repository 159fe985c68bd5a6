package rendezvous

import (
	"bytes"
	"context"
	"crypto/rand"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"
)

// discoveryDeadline bounds every wait for the DHT. On an idle machine
// discovery takes well under a second (see the test log); the bound is a
// hang guard, not a speed requirement, since a loaded machine may take
// many times longer.
const discoveryDeadline = 3 * time.Minute

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("FLOWMAIL_DEBUG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func testNetwork(t *testing.T) string {
	return "flowmail-test-" + rand.Text()[:10]
}

func startLocalMainline(t *testing.T, n int) *LocalMainline {
	t.Helper()
	m, err := StartLocalMainline(t.Context(), n, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m
}

// testConfig is the config of a test node on loopback announcing quicPort.
func testConfig(t *testing.T, routers []string, network string, quicPort int) Config {
	return Config{
		Network:    network,
		Port:       quicPort,
		ListenAddr: "127.0.0.1",
		Routers:    routers,
		StateDir:   t.TempDir(),
		Logger:     testLogger(t),
		Interval:   200 * time.Millisecond,
		// A healthy node on a loaded machine can miss a short probe
		// deadline; only the wedge test wants the watchdog to act.
		probeTimeout: time.Minute,
	}
}

// startNode starts a rendezvous with testConfig, closed when t ends.
func startNode(t *testing.T, routers []string, network string, quicPort int) *Rendezvous {
	t.Helper()
	return startConfigured(t, testConfig(t, routers, network, quicPort))
}

func startConfigured(t *testing.T, c Config) *Rendezvous {
	t.Helper()
	r, err := Start(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	return r
}

// waitFor waits until r has found every peer in want, and returns what it
// has found then.
func waitFor(t *testing.T, r *Rendezvous, want ...netip.AddrPort) []netip.AddrPort {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), discoveryDeadline)
	defer cancel()
	for {
		changed := r.Changed()
		got, err := r.Lookup(ctx)
		if err != nil {
			t.Fatalf("waiting for %v: have %v: %v", want, r.Peers(), err)
		}
		if containsAll(got, want) {
			return got
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("waiting for %v: have %v: %v", want, r.Peers(), ctx.Err())
		}
	}
}

// waitAnnounced waits until some node of m hands out r's announcement.
// Tests start the next node only then: nictuku nodes hand out only the
// newest announcer (see LocalMainline), so a node that starts while the
// previous one's first announce is still in flight may miss it.
func waitAnnounced(t *testing.T, m *LocalMainline, r *Rendezvous) {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	want := []byte("6:" + compact(loopback(r.s.Port).String()))
	deadline := time.Now().Add(discoveryDeadline)
	for i := 0; time.Now().Before(deadline); i++ {
		router := netip.MustParseAddrPort(m.Routers[i%len(m.Routers)])
		if bytes.Contains(askGetPeers(t, conn, router, r.InfoHash()), want) {
			return
		}
	}
	t.Fatalf("no node of the local mainline hands out %v", loopback(r.s.Port))
}

func containsAll(have, want []netip.AddrPort) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func loopback(port int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(port))
}

func sameSet(a, b []netip.AddrPort) bool {
	return len(a) == len(b) && containsAll(a, b)
}

func TestNodesOfOneNetworkFindEachOther(t *testing.T) {
	m := startLocalMainline(t, 0)
	netA := testNetwork(t)
	start := time.Now()
	a := startNode(t, m.Routers, netA, 40001)
	waitAnnounced(t, m, a)
	b := startNode(t, m.Routers, netA, 40002)
	gotA := waitFor(t, a, loopback(40002))
	gotB := waitFor(t, b, loopback(40001))
	t.Logf("two nodes found each other in %v", time.Since(start))
	// Each node's own announcement comes back from the DHT too; it must
	// be filtered out.
	if !sameSet(gotA, []netip.AddrPort{loopback(40002)}) || !sameSet(gotB, []netip.AddrPort{loopback(40001)}) {
		t.Fatalf("a found %v, b found %v: want exactly the other node", gotA, gotB)
	}

	// Another network on the same DHT: its nodes meet each other under
	// their own infohash and never see the first network's nodes, which
	// are announced on the same DHT nodes already.
	netC := testNetwork(t)
	start = time.Now()
	c := startNode(t, m.Routers, netC, 40003)
	waitAnnounced(t, m, c)
	d := startNode(t, m.Routers, netC, 40004)
	gotC := waitFor(t, c, loopback(40004))
	gotD := waitFor(t, d, loopback(40003))
	t.Logf("the second network's nodes found each other in %v", time.Since(start))
	if !sameSet(gotC, []netip.AddrPort{loopback(40004)}) || !sameSet(gotD, []netip.AddrPort{loopback(40003)}) {
		t.Fatalf("network %s found %v and %v: want only each other", netC, gotC, gotD)
	}
	if p := a.Peers(); !sameSet(p, []netip.AddrPort{loopback(40002)}) {
		t.Fatalf("a (network %s) found %v: want only b", netA, p)
	}
	for _, r := range []*Rendezvous{a, b, c, d} {
		if restarts, _ := r.restartCount(); restarts != 0 {
			t.Errorf("the watchdog replaced a healthy node %d times", restarts)
		}
	}
}

func TestLookupWaitsForContext(t *testing.T) {
	t.Parallel()
	a := startNode(t, []string{deadAddr(t).String()}, testNetwork(t), 40001)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	got, err := a.Lookup(ctx)
	if err != context.DeadlineExceeded || got != nil {
		t.Fatalf("Lookup alone on the network = %v, %v; want nil, deadline exceeded", got, err)
	}
}

func TestLookupAfterCloseFails(t *testing.T) {
	t.Parallel()
	a := startNode(t, []string{deadAddr(t).String()}, testNetwork(t), 40001)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Lookup(t.Context()); err != ErrClosed {
		t.Fatalf("Lookup after Close: %v, want ErrClosed", err)
	}
	select {
	case <-a.Changed():
	default:
		t.Fatal("Changed is not closed after Close")
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestLookupKeepsSearchingUntilFirstPeer: a node alone on its network
// waits in Lookup; a node that joins later is found long before the
// (hour-long) Interval, by the rounds Lookup starts or by the newcomer's
// announce reaching the waiting node directly.
func TestLookupKeepsSearchingUntilFirstPeer(t *testing.T) {
	m := startLocalMainline(t, 0)
	network := testNetwork(t)
	c := testConfig(t, m.Routers, network, 40001)
	c.Interval = time.Hour
	a := startConfigured(t, c)
	ctx, cancel := context.WithTimeout(t.Context(), discoveryDeadline)
	defer cancel()
	found := lookupAsync(ctx, a)
	b := startNode(t, m.Routers, network, 40002)
	if res := <-found; res.err != nil || !sameSet(res.peers, []netip.AddrPort{loopback(40002)}) {
		t.Fatalf("Lookup returned %v, %v; want %v", res.peers, res.err, loopback(40002))
	}
	waitFor(t, b, loopback(40001))
}

// TestLookupStartsRoundsWhileEmpty: with no peer known, Lookup asks the
// round loop for a new round every second, not only once.
func TestLookupStartsRoundsWhileEmpty(t *testing.T) {
	r := testRendezvous(true)
	r.kick = make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := lookupAsync(ctx, r)
	deadline := time.After(discoveryDeadline)
	for range 2 {
		select {
		case <-r.kick:
		case <-deadline:
			t.Fatal("Lookup stopped asking for rounds")
		}
	}
	r.addValues([]string{compact("127.0.0.1:5000")})
	if res := <-done; res.err != nil || !sameSet(res.peers, []netip.AddrPort{loopback(5000)}) {
		t.Fatalf("Lookup returned %v, %v", res.peers, res.err)
	}
}

type lookupResult struct {
	peers []netip.AddrPort
	err   error
}

// lookupAsync runs r.Lookup(ctx) in a goroutine that ends with ctx at
// the latest; its result arrives on the (buffered) channel.
func lookupAsync(ctx context.Context, r *Rendezvous) <-chan lookupResult {
	out := make(chan lookupResult, 1)
	go func() {
		peers, err := r.Lookup(ctx)
		out <- lookupResult{peers, err}
	}()
	return out
}

// TestLookupOnlyFindsWithoutAnnouncing: a lookup-only node (a client)
// finds an announcing one but is never handed out itself. nictuku nodes
// hand out the newest announcer, so an announcement would show at once.
func TestLookupOnlyFindsWithoutAnnouncing(t *testing.T) {
	m := startLocalMainline(t, 0)
	network := testNetwork(t)
	a := startNode(t, m.Routers, network, 40021)
	waitAnnounced(t, m, a)
	cfg := testConfig(t, m.Routers, network, 40022)
	cfg.LookupOnly = true
	l := startConfigured(t, cfg)
	waitFor(t, l, loopback(40021))

	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sawA := false
	for pass := range 3 {
		for _, r := range m.Routers {
			got := askGetPeers(t, conn, netip.MustParseAddrPort(r), a.InfoHash())
			if bytes.Contains(got, []byte(compact(loopback(40022).String()))) {
				t.Fatalf("pass %d: %s hands out the lookup-only node", pass, r)
			}
			sawA = sawA || bytes.Contains(got, []byte(compact(loopback(40021).String())))
		}
	}
	if !sawA {
		t.Fatal("no node hands out the announcing node either: the check sees nothing")
	}
}
