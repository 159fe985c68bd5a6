package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/grant"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/clock"
)

// TestListCreateAddShowRemove drives the roster commands: a list needs
// an identity of its own, members are contacts or addresses, show says
// whose grant the list holds, and the roster file is the owner's only.
func TestListCreateAddShowRemove(t *testing.T) {
	home := t.TempDir()
	if _, _, err := runCLI(t, "--home", home, "list", "create", "friends"); err == nil || !strings.Contains(err.Error(), "init") {
		t.Fatalf("create without an identity: %v", err)
	}
	if _, _, err := runCLI(t, "--home", home, "init", "--no-passphrase", "--difficulty", "8"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCLI(t, "--home", home, "list", "create", "Bad Name"); err == nil {
		t.Fatal("a name with a space and capitals was accepted")
	}
	out, _, err := runCLI(t, "--home", home, "list", "create", "friends")
	if err != nil || !strings.Contains(out, "allow add fm1") {
		t.Fatalf("create: %q %v", out, err)
	}
	if _, _, err := runCLI(t, "--home", home, "list", "create", "friends"); err == nil {
		t.Fatal("created twice")
	}
	if fi, err := os.Stat(filepath.Join(home, rosterFileName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("roster file: %v %v", fi.Mode(), err)
	}
	bob, carol := block.Sum([]byte("bob")), block.Sum([]byte("carol"))
	if _, _, err := runCLI(t, "--home", home, "contacts", "add", "bob", identity.FormatAddress(bob)); err != nil {
		t.Fatal(err)
	}
	// The list holds carol's grant, not bob's.
	pub, err := identity.ParsePubkey(mustRead(t, filepath.Join(home, pubFileName)))
	if err != nil {
		t.Fatal(err)
	}
	gs := grant.NewTable()
	g, err := grant.New(carol, pub.ID, clock.Real{}.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	gs.Hold(g)
	if err := gs.Save(grantsPath(home)); err != nil {
		t.Fatal(err)
	}
	out, _, err = runCLI(t, "--home", home, "list", "add", "bob")
	if err != nil || !strings.Contains(out, "no grant from them yet") {
		t.Fatalf("add bob: %q %v", out, err)
	}
	if out, _, err = runCLI(t, "--home", home, "list", "add", identity.FormatAddress(carol)); err != nil || strings.Contains(out, "no grant") {
		t.Fatalf("add carol: %q %v", out, err)
	}
	if _, _, err := runCLI(t, "--home", home, "list", "add", "bob"); err == nil {
		t.Fatal("bob added twice")
	}
	if _, _, err := runCLI(t, "--home", home, "list", "add", identity.FormatAddress(pub.ID)); err == nil {
		t.Fatal("the list was added to itself")
	}
	out, _, err = runCLI(t, "--home", home, "list", "show")
	if err != nil || !strings.Contains(out, "list friends <"+identity.FormatAddress(pub.ID)+">, 2 member(s)") {
		t.Fatalf("show: %q %v", out, err)
	}
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.Contains(l, "bob <") && !strings.Contains(l, "no grant"),
			strings.Contains(l, identity.FormatAddress(carol)) && !strings.Contains(l, "granted"):
			t.Fatalf("show, line %q: wrong grant state\n%s", l, out)
		}
	}
	if _, _, err := runCLI(t, "--home", home, "list", "remove", "bob"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCLI(t, "--home", home, "list", "remove", "bob"); err == nil {
		t.Fatal("removed twice")
	}
	if out, _, _ = runCLI(t, "--home", home, "list", "show"); strings.Contains(out, "bob") || !strings.Contains(out, "1 member(s)") {
		t.Fatalf("show after remove: %q", out)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
