package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/node"
	"github.com/flowmail/flowmail/onion"
	"github.com/flowmail/flowmail/testnet"
	"github.com/flowmail/flowmail/transport"
)

// exitWatch counts the requests exits execute, by kind.
type exitWatch struct {
	mu    sync.Mutex
	kinds map[onion.RequestKind]int
}

func (w *exitWatch) OnionReceived(block.ID, transport.Peer)                    {}
func (w *exitWatch) OnionForwarded(block.ID, string, block.ID, netip.AddrPort) {}
func (w *exitWatch) OnionHeld(block.ID)                                        {}
func (w *exitWatch) OnionExit(_ block.ID, _ string, req onion.Request) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.kinds[req.Kind()]++
}

func (w *exitWatch) count(k onion.RequestKind) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.kinds[k]
}

// TestSendAndFetchThroughOnion runs publish, send and fetch with
// --onion through the program on a 12-node loopback testnet with K = 3
// (the testnet writes its K for the clients that join it), each node in
// a /16 of its own, so relays exist beyond the K closest to any target:
// the mail arrives with its body intact, progress names the hops, the
// recipient's key log is read through exits (RECORD), and fetch deletes
// the mail through exits (DELETE), without a warning.
func TestSendAndFetchThroughOnion(t *testing.T) {
	ctx := hangGuard(t)
	patient := func(c *node.Config) {
		c.DialTimeout, c.HandshakeTimeout, c.RequestTimeout = testRequestTimeout, testRequestTimeout, testRequestTimeout
	}
	w := &exitWatch{kinds: map[onion.RequestKind]int{}}
	began := time.Now()
	step := func(what string) { t.Logf("%s done at %v", what, time.Since(began).Round(time.Millisecond)) }
	net, err := testnet.Start(ctx, testnet.Config{Nodes: 12, K: 3, Dir: t.TempDir(), TuneClient: patient, Tune: func(i int, c *node.Config) {
		patient(c)
		c.Listen = fmt.Sprintf("127.%d.0.1:0", i+1)
		c.OnionObserver = w
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { net.Close() })
	if err := net.WriteBootstrapFile(); err != nil {
		t.Fatal(err)
	}
	step("testnet")
	homes := t.TempDir()
	bob, err := testnet.NewUser(filepath.Join(homes, "bob"), 8)
	if err != nil {
		t.Fatal(err)
	}
	onionArgs := []string{"--testnet", net.Dir(), "--onion", "--onion-delay", "0"}
	if _, stderr, err := runCLI(t, append([]string{"--home", bob.Home, "publish"}, onionArgs...)...); err != nil {
		t.Fatalf("publish --onion: %v\n%s", err, stderr)
	}
	step("publish")
	alice := filepath.Join(homes, "alice")
	if _, stderr, err := runCLI(t, "--home", alice, "init", "--no-passphrase"); err != nil {
		t.Fatalf("init: %v\n%s", err, stderr)
	}
	records := w.count(onion.KindRecord)
	const body = "Through three relays, and back."
	_, stderr, err := runCLI(t, append([]string{"--home", alice, "send", "--to", identity.FormatAddress(bob.ID()), "--subject", "Onion", "--body", body}, onionArgs...)...)
	if err != nil {
		t.Fatalf("send --onion: %v\n%s", err, stderr)
	}
	step("send")
	if !strings.Contains(stderr, "taken by the first relay (hop 1 of 3)") || !strings.Contains(stderr, "answered through the reply path") {
		t.Errorf("send --onion shows no hop progress:\n%s", stderr)
	}
	if w.count(onion.KindRecord) < records+node.RecordExits {
		t.Errorf("send --onion read bob's key log through %d exits, want %d", w.count(onion.KindRecord)-records, node.RecordExits)
	}
	if _, err := os.Stat(filepath.Join(alice, onionGuardFile)); err != nil {
		t.Errorf("no guard file kept: %v", err)
	}
	_, stderr, err = runCLI(t, append([]string{"--home", bob.Home, "fetch"}, onionArgs...)...)
	if err != nil {
		t.Fatalf("fetch --onion: %v\n%s", err, stderr)
	}
	step("fetch")
	if strings.Contains(stderr, "stays in the network") {
		t.Errorf("fetch --onion kept the mail in the network:\n%s", stderr)
	}
	if w.count(onion.KindDelete) == 0 {
		t.Errorf("fetch --onion deleted nothing through an exit:\n%s", stderr)
	}
	entries, err := os.ReadDir(filepath.Join(bob.Home, maildirName, "new"))
	if err != nil || len(entries) != 1 {
		t.Fatalf("bob's Maildir holds %d mails (%v), want 1", len(entries), err)
	}
	msg, err := os.ReadFile(filepath.Join(bob.Home, maildirName, "new", entries[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(msg), body) {
		t.Fatalf("delivered mail lacks the body:\n%s", msg)
	}
}

// TestOnionAdviceNamesFlags: the typed onion errors come back with the
// flags to change.
func TestOnionAdviceNamesFlags(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("x: %w", node.ErrNoRelays), "without --onion"},
		{fmt.Errorf("x: %w", node.ErrOnionTimeout), "--onion-delay"},
	} {
		got := onionAdvice(tc.err)
		if !errors.Is(got, tc.err) || !strings.Contains(got.Error(), tc.want) {
			t.Errorf("advice for %v: %v, want it to wrap the error and name %q", tc.err, got, tc.want)
		}
	}
	if onionAdvice(nil) != nil {
		t.Error("advice for no error is an error")
	}
}
