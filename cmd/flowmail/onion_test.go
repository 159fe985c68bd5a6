package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/node"
	"github.com/flowmail/flowmail/testnet"
)

// TestSendAndFetchThroughOnion runs publish, send and fetch with
// --onion through the program on a loopback testnet large enough for
// paths (more than K + 3 nodes, each in a /16 of its own): the mail
// arrives with its body intact, progress names the hops, and fetch says
// the mail stays in the network. A 26-node testnet under -race beside
// the rest of the suite took the package past its 10 minutes, so it
// runs with FLOWMAIL_LONG=1; testnet's TestOnionMailArrivesByteIdentical
// covers the same path in process, on 16 nodes with K = 5, always.
func TestSendAndFetchThroughOnion(t *testing.T) {
	if !longTests {
		t.Skip("FLOWMAIL_LONG=1 runs publish, send and fetch --onion on a 26-node loopback testnet")
	}
	ctx := hangGuard(t)
	patient := func(c *node.Config) {
		c.DialTimeout, c.HandshakeTimeout, c.RequestTimeout = testRequestTimeout, testRequestTimeout, testRequestTimeout
	}
	net, err := testnet.Start(ctx, testnet.Config{Nodes: 26, Dir: t.TempDir(), TuneClient: patient, Tune: func(i int, c *node.Config) {
		patient(c)
		c.Listen = fmt.Sprintf("127.%d.0.1:0", i+1)
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { net.Close() })
	if err := net.WriteBootstrapFile(); err != nil {
		t.Fatal(err)
	}
	homes := t.TempDir()
	bob, err := testnet.NewUser(filepath.Join(homes, "bob"), 8)
	if err != nil {
		t.Fatal(err)
	}
	onion := []string{"--testnet", net.Dir(), "--onion", "--onion-delay", "0"}
	if _, stderr, err := runCLI(t, append([]string{"--home", bob.Home, "publish"}, onion...)...); err != nil {
		t.Fatalf("publish --onion: %v\n%s", err, stderr)
	}
	alice := filepath.Join(homes, "alice")
	if _, stderr, err := runCLI(t, "--home", alice, "init", "--no-passphrase"); err != nil {
		t.Fatalf("init: %v\n%s", err, stderr)
	}
	const body = "Through three relays, and back."
	_, stderr, err := runCLI(t, append([]string{"--home", alice, "send", "--to", identity.FormatAddress(bob.ID()), "--subject", "Onion", "--body", body}, onion...)...)
	if err != nil {
		t.Fatalf("send --onion: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "taken by the first relay (hop 1 of 3)") || !strings.Contains(stderr, "answered through the reply path") {
		t.Errorf("send --onion shows no hop progress:\n%s", stderr)
	}
	if _, err := os.Stat(filepath.Join(alice, onionGuardFile)); err != nil {
		t.Errorf("no guard file kept: %v", err)
	}
	_, stderr, err = runCLI(t, append([]string{"--home", bob.Home, "fetch"}, onion...)...)
	if err != nil {
		t.Fatalf("fetch --onion: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "stays in the network") {
		t.Errorf("fetch --onion does not say the mail stays:\n%s", stderr)
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
