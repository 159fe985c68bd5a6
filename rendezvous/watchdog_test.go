package rendezvous

import (
	"context"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
)

const wedgeChildEnv = "FLOWMAIL_RENDEZVOUS_WEDGE_CHILD"

// TestWedgedDHTIsReplaced shows the library bug and the watchdog: three
// empty datagrams make a node deaf and unstoppable, and the watchdog
// replaces it so the node finds peers that arrive afterwards. It runs in
// a child process, because the wedged goroutines can never be stopped.
func TestWedgedDHTIsReplaced(t *testing.T) {
	if os.Getenv(wedgeChildEnv) == "" {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestWedgedDHTIsReplaced$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), wedgeChildEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		t.Logf("child:\n%s", out)
		return
	}

	m := startLocalMainline(t, 0)
	network := testNetwork(t)
	cfg := testConfig(t, m.Routers, network, 40001)
	cfg.stopTimeout = 300 * time.Millisecond
	cfg.probeTimeout = 300 * time.Millisecond
	a := startConfigured(t, cfg)
	waitAnnounced(t, m, a)
	b := startNode(t, m.Routers, network, 40002)
	waitFor(t, a, loopback(40002))
	waitFor(t, b, loopback(40001))

	before := a.Addr()
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(before))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// Three empty datagrams wedge the node, but a busy loopback may drop
	// some, so keep sending one per tick until the watchdog has replaced
	// a node that then would not stop (which shows it was wedged).
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(discoveryDeadline)
	for _, wedged := a.restartCount(); wedged == 0; _, wedged = a.restartCount() {
		// While the watchdog swaps nodes the port is closed and a write
		// reports "connection refused"; the next tick tries again.
		c.Write(nil)
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("the watchdog never replaced a wedged node")
		}
	}
	c.Close()
	if a.Addr() != before {
		t.Errorf("replacement node on %v, want the old address %v", a.Addr(), before)
	}
	// A node that joins now can only be found by a working DHT node (the
	// last empty datagrams may have wedged the replacement too; the
	// watchdog replaces it again). The reverse, d finding a, is not
	// checked: nictuku nodes hand out only the newest announcer (see
	// LocalMainline), so d sees a only if a announces to d itself.
	startNode(t, m.Routers, network, 40003)
	waitFor(t, a, loopback(40003))
}
