package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/flowmail/flowmail/node"
	"github.com/flowmail/flowmail/testnet"
)

// TestMain runs the tests without the developer's FLOWMAIL_* settings
// (a FLOWMAIL_BOOTSTRAP would send test clients off this machine) but
// with generous request timeouts, and checks that no test leaves a
// goroutine behind.
// testRequestTimeout bounds requests in these tests; it guards against
// hangs only.
const testRequestTimeout = 2 * time.Minute

func TestMain(m *testing.M) {
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "FLOWMAIL_") {
			os.Unsetenv(name)
		}
	}
	// Every peer in these tests is alive: a request or a dial that a busy
	// machine makes slow must not fail. The command line's clients and
	// testnets (and the processes the tests start) read this.
	os.Setenv("FLOWMAIL_REQUEST_TIMEOUT", testRequestTimeout.String())
	goleak.VerifyTestMain(m)
}

// hangGuard is a test's context: it ends with the test, or after
// minutes if something hangs. No test relies on it to pass.
func hangGuard(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// startTestTestnet starts a loopback testnet of n nodes in dir whose
// requests may take as long as a busy machine needs; it stops with the
// test.
func startTestTestnet(t *testing.T, ctx context.Context, n int, dir string) *testnet.Net {
	t.Helper()
	patient := func(c *node.Config) {
		c.DialTimeout, c.HandshakeTimeout, c.RequestTimeout = testRequestTimeout, testRequestTimeout, testRequestTimeout
	}
	net, err := testnet.Start(ctx, testnet.Config{Nodes: n, Dir: dir, Tune: func(_ int, c *node.Config) { patient(c) }, TuneClient: patient})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { net.Close() })
	return net
}
