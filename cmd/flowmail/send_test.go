package main

import (
	"bytes"
	"context"
	"github.com/flowmail/flowmail/internal/syncbuf"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/testnet"
)

// TestSendBlindCopyIsASeparateMail sends to bob with carol in Bcc through
// the CLI and checks, from what each one fetches, that bob's mail names
// only bob (envelope and headers) and carol gets a mail of her own.
func TestSendBlindCopyIsASeparateMail(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a loopback testnet")
	}
	ctx := hangGuard(t)
	net := startTestTestnet(t, ctx, 4, t.TempDir())
	if err := net.WriteBootstrapFile(); err != nil {
		t.Fatal(err)
	}
	homes := t.TempDir()
	users := map[string]*testnet.User{}
	for _, name := range []string{"bob", "carol"} {
		u, err := testnet.NewUser(filepath.Join(homes, name), 8)
		if err != nil {
			t.Fatal(err)
		}
		if _, stderr, err := runCLI(t, "--home", u.Home, "publish", "--testnet", net.Dir()); err != nil {
			t.Fatalf("publish %s: %v\n%s", name, err, stderr)
		}
		users[name] = u
	}
	bob, carol := users["bob"], users["carol"]
	alice := filepath.Join(homes, "alice")
	if _, stderr, err := runCLI(t, "--home", alice, "init", "--no-passphrase"); err != nil {
		t.Fatalf("init: %v\n%s", err, stderr)
	}
	out, stderr, err := runCLI(t, "--home", alice, "send", "--testnet", net.Dir(),
		"--to", identity.FormatAddress(bob.ID()), "--bcc", identity.FormatAddress(carol.ID()),
		"--subject", "Surprise party", "--body", "Saturday at eight.")
	if err != nil {
		t.Fatalf("send: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, "blind copy") {
		t.Errorf("send output does not mention the blind copy: %q", out)
	}

	c, err := net.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	carolAddr := identity.FormatAddress(carol.ID())
	for _, u := range []*testnet.User{bob, carol} {
		rep, err := testnet.FetchMail(ctx, c, u, delivery.FetchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Delivered) != 1 {
			t.Fatalf("%s: %d mails delivered, want 1 (rejected %v, deferred %v)", u.Home, len(rep.Delivered), rep.Rejected, rep.Deferred)
		}
		d := rep.Delivered[0]
		if !slices.Equal(d.Recipients, []block.ID{u.ID()}) {
			t.Errorf("%s: envelope names %d recipients, want only this one", u.Home, len(d.Recipients))
		}
		msg, err := os.ReadFile(d.Path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(msg, []byte("Saturday at eight.")) || d.Subject != "Surprise party" {
			t.Errorf("%s: wrong mail delivered: %q", u.Home, msg)
		}
		// Both copies carry the same headers: To bob, and no trace of carol.
		if bytes.Contains(bytes.ToLower(msg), []byte(strings.ToLower(carolAddr))) {
			t.Errorf("%s: the message names the blind copy recipient:\n%s", u.Home, msg)
		}
	}
}

// TestSendErrorsSayWhatToDo: the mistakes a sender makes are caught
// before anything is stored, each with the next step.
func TestSendErrorsSayWhatToDo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a loopback testnet")
	}
	net := startTestTestnet(t, hangGuard(t), 3, t.TempDir())
	home := t.TempDir()
	if _, stderr, err := runCLI(t, "--home", home, "init", "--no-passphrase"); err != nil {
		t.Fatalf("init: %v\n%s", err, stderr)
	}
	stranger, err := identity.Generate(8, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(t.TempDir(), "big.bin")
	if err := os.WriteFile(big, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, 800<<20); err != nil { // sparse: costs no disk; over a mail once base64 grows it
		t.Fatal(err)
	}
	addr := identity.FormatAddress(stranger.ID())
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unpublished recipient", []string{"--to", addr}, "ask them to run `flowmail publish`"},
		{"cut-off address", []string{"--to", addr[:20]}, "looks like a cut-off address"},
		{"unknown name", []string{"--to", "nobody"}, "flowmail contacts add nobody"},
		{"attachment too big", []string{"--to", addr, "--attach", big}, "send fewer or smaller files"},
		{"missing attachment", []string{"--to", addr, "--attach", big + ".nope"}, "--attach"},
		{"onion without relays", []string{"--to", addr, "--onion"}, "--onion needs at least 3 relays"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--home", home, "send", "--testnet", net.Dir(), "--body", "hi"}, tc.args...)
			_, _, err := runCLI(t, args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("send %v: %v, want an error saying %q", tc.args, err, tc.want)
			}
		})
	}
	// The bridge takes --onion too, and its fetches then go through
	// relays: here there are too few, and its first fetch says so with the
	// advice send gives. It keeps serving (relays may come), so the test
	// stops it once the line is there.
	t.Run("bridge onion without relays", func(t *testing.T) {
		ctx, cancel := context.WithCancel(hangGuard(t))
		defer cancel()
		var stdout, stderr syncbuf.Buffer
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, []string{"flowmail", "--home", home, "bridge", "--testnet", net.Dir(), "--imap", "127.0.0.1:0", "--smtp", "127.0.0.1:0", "--onion"}, strings.NewReader(""), &stdout, &stderr)
		}()
		const want = "--onion needs at least 3 relays"
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for !strings.Contains(stderr.String(), want) {
			select {
			case err := <-done:
				t.Fatalf("bridge --onion stopped (%v) without saying %q:\n%s", err, want, stderr.String())
			case <-ctx.Done():
				t.Fatalf("bridge --onion never said %q:\n%s", want, stderr.String())
			case <-tick.C:
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("bridge --onion, stopped: %v", err)
		}
	})
}

// TestSendWithoutToSaysSo: --bcc (or nothing) without --to is a short
// error that names --to, not the whole help.
func TestSendWithoutToSaysSo(t *testing.T) {
	home := t.TempDir()
	if _, _, err := runCLI(t, "--home", home, "init", "--no-passphrase"); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"--bcc", "carol"}, {"--cc", "carol"}, {}} {
		out, stderr, err := runCLI(t, append([]string{"--home", home, "send", "--body", "hi", "--bootstrap", "127.0.0.1:9"}, args...)...)
		if err == nil || !strings.Contains(err.Error(), "--to") || strings.Contains(out+stderr, "USAGE") || strings.Contains(out+stderr, "OPTIONS") {
			t.Errorf("send %v: %v\nstdout: %s\nstderr: %s", args, err, out, stderr)
		}
	}
}
