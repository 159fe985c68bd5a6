package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/testnet"
)

// runStoppedBy runs the CLI under ctx and stops it as soon as its
// stderr says stop: a send that starts grinding 2^32 trials is not left
// to run for minutes.
func runStoppedBy(ctx context.Context, stop string, args ...string) (string, string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out, errb bytes.Buffer
	err := run(ctx, append([]string{"flowmail"}, args...), strings.NewReader(""), &out, &stopWriter{w: &errb, said: stop, seen: cancel})
	return out.String(), errb.String(), err
}

// TestAllowLetsAFriendSkipTheWork is issue 13's scenario through the
// CLI on a loopback testnet: bob demands D = 32 (minutes of grinding);
// bob allows alice; once alice has fetched the grant her send needs only
// the public 16 bits and bob receives it; carol, without a grant, would
// have to grind all 32 bits (her send is stopped, nothing arrives); bob
// withdraws alice's grant and her next mail is refused with its reason.
func TestAllowLetsAFriendSkipTheWork(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a loopback testnet")
	}
	ctx := hangGuard(t)
	net := startTestTestnet(t, ctx, 4, t.TempDir())
	homes := t.TempDir()
	users := map[string]*testnet.User{}
	for name, d := range map[string]int{"alice": 8, "bob": 32, "carol": 8} {
		u, err := testnet.NewUser(filepath.Join(homes, name), d)
		if err != nil {
			t.Fatal(err)
		}
		if _, stderr, err := runCLI(t, "--home", u.Home, "publish", "--testnet", net.Dir()); err != nil {
			t.Fatalf("publish %s: %v\n%s", name, err, stderr)
		}
		users[name] = u
	}
	alice, bob, carol := users["alice"], users["bob"], users["carol"]
	bobAddr, aliceAddr := identity.FormatAddress(bob.ID()), identity.FormatAddress(alice.ID())
	cli := func(u *testnet.User, args ...string) (string, string) {
		t.Helper()
		out, stderr, err := runCLI(t, append([]string{"--home", u.Home}, append(args[:1:1], append([]string{"--testnet", net.Dir()}, args[1:]...)...)...)...)
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", u.Home, args, err, stderr)
		}
		return out, stderr
	}
	if _, stderr, err := runCLI(t, "--home", bob.Home, "contacts", "add", "alice", aliceAddr); err != nil {
		t.Fatalf("contacts add: %v\n%s", err, stderr)
	}
	out, stderr, err := runCLI(t, "--home", bob.Home, "allow", "add", "--testnet", net.Dir(), "alice")
	if err != nil || !strings.Contains(out, "allowed alice") {
		t.Fatalf("allow add: %v\n%s\n%s", err, out, stderr)
	}
	out, _ = cli(alice, "fetch")
	if !strings.Contains(out, "allows you to write without the proof of work") {
		t.Fatalf("alice's fetch did not keep the grant:\n%s", out)
	}
	const fullWork = "about 2^32 trials"
	sendAs := func(u *testnet.User, subject string) (string, error) {
		_, stderr, err := runStoppedBy(ctx, fullWork, "--home", u.Home, "send", "--testnet", net.Dir(), "--to", bobAddr, "--subject", subject, "--body", "text")
		return stderr, err
	}
	stderr, err = sendAs(alice, "cheap")
	if err != nil || !strings.Contains(stderr, "allowed you") || strings.Contains(stderr, fullWork) {
		t.Fatalf("alice's send under the grant: %v\n%s", err, stderr)
	}
	out, stderr = cli(bob, "fetch")
	if !strings.Contains(out, "Subject: cheap") {
		t.Fatalf("bob did not receive alice's granted mail:\n%s\n%s", out, stderr)
	}

	// Carol has no grant: her send grinds 2^32 trials (minutes here), so
	// it is stopped once it says so; nothing reaches bob.
	stderr, err = sendAs(carol, "stranger")
	if err == nil || !strings.Contains(stderr, fullWork) {
		t.Fatalf("carol's send: %v, want it stopped while it grinds the full work\n%s", err, stderr)
	}
	out, stderr = cli(bob, "fetch")
	if strings.Contains(out, "Subject:") {
		t.Fatalf("bob received mail after carol's stopped send:\n%s\n%s", out, stderr)
	}

	// Withdrawn: alice still believes she holds a grant (she is not told),
	// her mail is refused with the reason.
	if out, stderr, err := runCLI(t, "--home", bob.Home, "allow", "remove", "alice"); err != nil || !strings.Contains(out, "withdrew") {
		t.Fatalf("allow remove: %v\n%s\n%s", err, out, stderr)
	}
	if stderr, err := sendAs(alice, "after withdrawal"); err != nil {
		t.Fatalf("alice's send after withdrawal: %v\n%s", err, stderr)
	}
	out, stderr = cli(bob, "fetch")
	if strings.Contains(out, "after withdrawal") || !strings.Contains(stderr, "withdrawn grant") {
		t.Fatalf("a mail under a withdrawn grant: stdout\n%s\nstderr\n%s", out, stderr)
	}
	list, _, err := runCLI(t, "--home", bob.Home, "allow", "list")
	if err != nil || !strings.Contains(list, "withdrawn on") {
		t.Fatalf("allow list: %v\n%s", err, list)
	}
	if fi, err := os.Stat(filepath.Join(bob.Home, grantsFileName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("grants file: %v %v, want mode 0600", fi, err)
	}

	// A mailing list on the same testnet (spec 17.7): bob and carol
	// (both D = 32 now) grant the list, alice (D = 8) does not; alice's
	// post reaches all three, the list grinding only 2^16 for bob and
	// carol (its run is stopped if it starts on 2^32) and alice's 2^8.
	lst, err := testnet.NewUser(filepath.Join(homes, "list"), 8)
	if err != nil {
		t.Fatal(err)
	}
	carol32, err := testnet.NewUser(filepath.Join(homes, "carol32"), 32)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []*testnet.User{lst, carol32} {
		cli(u, "publish")
	}
	listAddr := identity.FormatAddress(lst.ID())
	if out, stderr, err := runCLI(t, "--home", lst.Home, "list", "create", "friends"); err != nil || !strings.Contains(out, listAddr) {
		t.Fatalf("list create: %v\n%s\n%s", err, out, stderr)
	}
	for _, u := range []*testnet.User{alice, bob, carol32} {
		if _, stderr, err := runCLI(t, "--home", lst.Home, "list", "add", identity.FormatAddress(u.ID())); err != nil {
			t.Fatalf("list add: %v\n%s", err, stderr)
		}
	}
	for _, u := range []*testnet.User{bob, carol32} {
		if _, stderr, err := runCLI(t, "--home", u.Home, "allow", "add", "--testnet", net.Dir(), listAddr); err != nil {
			t.Fatalf("allow add the list: %v\n%s", err, stderr)
		}
	}
	if out, _, err := runCLI(t, "--home", lst.Home, "list", "run", "--testnet", net.Dir()); err != nil || strings.Count(out, "allows you to write without the proof of work") != 2 || strings.Contains(out, "re-sent") {
		t.Fatalf("the list's first run: want the two grants kept and nothing re-sent: %v\n%s", err, out)
	}
	if out, _, _ := runCLI(t, "--home", lst.Home, "list", "show"); strings.Count(out, "granted") != 2 || strings.Count(out, "no grant") != 1 {
		t.Fatalf("list show:\n%s", out)
	}
	if _, stderr, err := runCLI(t, "--home", alice.Home, "send", "--testnet", net.Dir(), "--to", listAddr, "--subject", "to the list", "--body", "hello all"); err != nil {
		t.Fatalf("alice's post: %v\n%s", err, stderr)
	}
	out, stderr, err = runStoppedBy(ctx, fullWork, "--home", lst.Home, "list", "run", "--testnet", net.Dir())
	if err != nil || strings.Contains(stderr, fullWork) || !strings.Contains(out, "re-sent to 3 member(s): 2 under their grant, 1 with their full proof of work") {
		t.Fatalf("the list's run: %v\n%s\n%s", err, out, stderr)
	}
	for _, u := range []*testnet.User{alice, bob, carol32} {
		if out, stderr := cli(u, "fetch"); !strings.Contains(out, "Subject: to the list") || !strings.Contains(out, listAddr) {
			t.Fatalf("%s did not receive the list's copy:\n%s\n%s", u.Home, out, stderr)
		}
	}
}

// stopWriter collects what a command writes and calls seen once the
// text said appears in it.
type stopWriter struct {
	w    *bytes.Buffer
	said string
	seen func()
}

func (s *stopWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if s.seen != nil && strings.Contains(s.w.String(), s.said) {
		s.seen()
		s.seen = nil
	}
	return n, err
}
