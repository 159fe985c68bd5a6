package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/record"
)

// Keys through the command line over a loopback testnet (real QUIC, real
// Badger): rotation keeps the address and moves senders to the new key,
// mail sealed to the old key still opens within the grace period, a
// revoked address refuses senders, and a thief with identity.key alone
// cannot rotate.

// mailsIn counts the mails delivered into home's Maildir.
func mailsIn(t *testing.T, home string) int {
	t.Helper()
	n := 0
	for _, sub := range []string{"new", "cur"} {
		es, err := os.ReadDir(filepath.Join(home, maildirName, sub))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		n += len(es)
	}
	return n
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, stderr, err := runCLI(t, args...)
	if err != nil {
		t.Fatalf("flowmail %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return out
}

func TestKeyRotateThenReceive(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a loopback testnet")
	}
	net := startTestTestnet(t, hangGuard(t), 4, t.TempDir())
	homes := t.TempDir()
	bob, alice := filepath.Join(homes, "bob"), filepath.Join(homes, "alice")
	tn := []string{"--testnet", net.Dir()}
	mustRun(t, append([]string{"--home", bob, "init", "--no-passphrase", "--difficulty", "4", "--publish"}, tn...)...)
	mustRun(t, append([]string{"--home", alice, "init", "--no-passphrase", "--difficulty", "4", "--publish"}, tn...)...)
	addr := strings.TrimSpace(mustRun(t, "--home", bob, "whoami"))
	send := func(body string) {
		t.Helper()
		mustRun(t, append([]string{"--home", alice, "send", "--to", addr, "--subject", body, "--body", body}, tn...)...)
	}

	// A thief who copied identity.key (and the public key log) but not
	// next.key cannot rotate: not without a next key, not with another.
	thief := filepath.Join(homes, "thief")
	if err := os.MkdirAll(thief, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{keyFileName, keyLogFileName} {
		b, err := os.ReadFile(filepath.Join(bob, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(thief, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := runCLI(t, append([]string{"--home", thief, "key", "rotate"}, tn...)...); err == nil || !strings.Contains(err.Error(), "no next key") {
		t.Fatalf("rotate without next.key: %v", err)
	}
	if _, _, err := runCLI(t, append([]string{"--home", thief, "key", "rotate", "--next-key", filepath.Join(alice, nextKeyFileName)}, tn...)...); err == nil || !strings.Contains(err.Error(), "next key") {
		t.Fatalf("rotate with another identity's next key: %v", err)
	}

	send("sealed-to-generation-0")
	mustRun(t, append([]string{"--home", bob, "key", "rotate"}, tn...)...)
	if got := strings.TrimSpace(mustRun(t, "--home", bob, "whoami")); got != addr {
		t.Fatalf("whoami after the rotation: %s, want the unchanged %s", got, addr)
	}
	id, err := identity.ReadKeyFile(filepath.Join(bob, keyFileName), nil)
	if err != nil || id.Generation() != 1 || id.Address() != addr {
		t.Fatalf("bob's key after the rotation: %v, %v", id, err)
	}

	// Within the grace period, mail sealed to the retired key opens.
	mustRun(t, append([]string{"--home", bob, "fetch"}, tn...)...)
	if n := mailsIn(t, bob); n != 1 {
		t.Fatalf("%d mails delivered after the rotation, want the one sealed to generation 0", n)
	}

	// Alice resolves bob's address to the new key: with the retired key
	// gone, the mail still opens.
	send("sealed-to-generation-1")
	if id.ForgetRetired(time.Now().Add(identity.GracePeriod+time.Hour)) != 0 {
		t.Fatal("a retired key outlived the grace period")
	}
	if err := identity.ReplaceKeyFile(filepath.Join(bob, keyFileName), id, identity.KeyFileOptions{NoPassphrase: true}); err != nil {
		t.Fatal(err)
	}
	mustRun(t, append([]string{"--home", bob, "fetch"}, tn...)...)
	if n := mailsIn(t, bob); n != 2 {
		t.Fatalf("%d mails delivered, want 2: the mail sent after the rotation was not sealed to the new key", n)
	}

	// Bob, rotated, sends as his unchanged address (the envelope carries
	// it beside his new block): alice's fetch checks his new key against
	// his key log and delivers it as from bob.
	aliceAddr := strings.TrimSpace(mustRun(t, "--home", alice, "whoami"))
	mustRun(t, append([]string{"--home", bob, "send", "--to", aliceAddr, "--subject", "from-generation-1", "--body", "rotated"}, tn...)...)
	_, stderr, err := runCLI(t, append([]string{"--home", alice, "fetch"}, tn...)...)
	if err != nil || mailsIn(t, alice) != 1 {
		t.Fatalf("alice's fetch of mail from bob after his rotation: %v, %d delivered\n%s", err, mailsIn(t, alice), stderr)
	}
	delivered, err := filepath.Glob(filepath.Join(alice, maildirName, "new", "*"))
	if err != nil || len(delivered) != 1 {
		t.Fatalf("alice's Maildir: %v %v", delivered, err)
	}
	if b, err := os.ReadFile(delivered[0]); err != nil || !strings.Contains(string(b), "From: <"+addr+"@flowmail.invalid>") {
		t.Fatalf("the mail bob sent after rotating does not show his address in From (%v):\n%s", err, b)
	}

	// The safety code is the same from either side, and rotations keep it.
	code := mustRun(t, "--home", bob, "whoami", "--with", strings.TrimSpace(mustRun(t, "--home", alice, "whoami")))
	back := mustRun(t, "--home", alice, "whoami", "--with", addr)
	lastLine := func(s string) string {
		lines := strings.Split(strings.TrimSpace(s), "\n")
		return strings.TrimSpace(lines[len(lines)-1])
	}
	if c := lastLine(code); len(c) != 35 || c != lastLine(back) {
		t.Fatalf("safety codes differ or are malformed:\n%s\n%s", code, back)
	}
}

func TestKeyRevokeThenSendIsRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a loopback testnet")
	}
	net := startTestTestnet(t, hangGuard(t), 4, t.TempDir())
	homes := t.TempDir()
	bob, alice := filepath.Join(homes, "bob"), filepath.Join(homes, "alice")
	tn := []string{"--testnet", net.Dir()}
	mustRun(t, append([]string{"--home", bob, "init", "--no-passphrase", "--difficulty", "4", "--publish"}, tn...)...)
	mustRun(t, append([]string{"--home", alice, "init", "--no-passphrase", "--difficulty", "4", "--publish"}, tn...)...)
	addr := strings.TrimSpace(mustRun(t, "--home", bob, "whoami"))

	// A mail bob signed before he revoked: alice refuses it once she
	// sees the revocation.
	mustRun(t, append([]string{"--home", bob, "send", "--to", strings.TrimSpace(mustRun(t, "--home", alice, "whoami")), "--body", "signed before the revocation"}, tn...)...)

	if _, _, err := runCLI(t, append([]string{"--home", bob, "key", "revoke"}, tn...)...); err == nil || !strings.Contains(err.Error(), "--yes") {
		t.Fatalf("revoke without --yes: %v", err)
	}
	// Bob lost identity.key: the committed next key revokes.
	if err := os.Remove(filepath.Join(bob, keyFileName)); err != nil {
		t.Fatal(err)
	}
	mustRun(t, append([]string{"--home", bob, "key", "revoke", "--with-next", "--yes"}, tn...)...)

	_, _, err := runCLI(t, append([]string{"--home", alice, "send", "--to", addr, "--body", "hello?"}, tn...)...)
	if err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("send to a revoked address: %v, want an error that says revoked", err)
	}
	// Nothing was composed, so nothing was stored.
	if es, err := os.ReadDir(filepath.Join(alice, outboxDirName)); err == nil && len(es) != 0 {
		t.Fatalf("the refused send left %d entries in the outbox", len(es))
	}
	_, stderr, _ := runCLI(t, append([]string{"--home", alice, "fetch"}, tn...)...)
	if n := mailsIn(t, alice); n != 0 {
		t.Fatalf("alice accepted %d mails signed by a revoked key", n)
	}
	if !strings.Contains(stderr, "revoked") {
		t.Fatalf("fetch does not say why the mail was refused:\n%s", stderr)
	}
}

func TestContactKeyChangeOutsideTheChainIsRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a loopback testnet")
	}
	net := startTestTestnet(t, hangGuard(t), 4, t.TempDir())
	homes := t.TempDir()
	bob, alice := filepath.Join(homes, "bob"), filepath.Join(homes, "alice")
	tn := []string{"--testnet", net.Dir()}
	mustRun(t, append([]string{"--home", bob, "init", "--no-passphrase", "--difficulty", "4", "--publish"}, tn...)...)
	mustRun(t, append([]string{"--home", alice, "init", "--no-passphrase", "--difficulty", "4", "--publish"}, tn...)...)
	addr := strings.TrimSpace(mustRun(t, "--home", bob, "whoami"))
	// contacts add pins bob's key history at once, before any mail.
	mustRun(t, append([]string{"--home", alice, "contacts", "add"}, append(tn, "bob", addr)...)...)
	if list := mustRun(t, "--home", alice, "contacts", "list"); !strings.Contains(list, "pinned, generation 0") {
		t.Fatalf("contacts list after contacts add:\n%s", list)
	}
	// Alice's fetch re-stores her contacts' key logs (spec 15.4).
	mustRun(t, append([]string{"--home", alice, "fetch"}, tn...)...)
	if book, err := loadContacts(alice); err != nil || book.Pins[addr] == nil || book.Pins[addr].Refreshed == "" {
		t.Fatalf("bob's key log was not re-stored by alice's fetch: %v", err)
	}
	send := func() error {
		_, stderr, err := runCLI(t, append([]string{"--home", alice, "send", "--to", "bob", "--body", "hi"}, tn...)...)
		if err == nil && strings.Contains(stderr, "rotated") {
			t.Log("noted: ", stderr)
		}
		return err
	}
	if err := send(); err != nil {
		t.Fatal(err)
	}
	if list := mustRun(t, "--home", alice, "contacts", "list"); !strings.Contains(list, "pinned, generation 0") {
		t.Fatalf("contacts list after the first send:\n%s", list)
	}
	// A rotation follows the signed history: accepted, the pin moves on.
	mustRun(t, append([]string{"--home", bob, "key", "rotate"}, tn...)...)
	if _, stderr, err := runCLI(t, append([]string{"--home", alice, "send", "--to", "bob", "--body", "hi"}, tn...)...); err != nil || !strings.Contains(stderr, "rotated its key to generation 1") {
		t.Fatalf("send after a rotation: %v\n%s", err, stderr)
	}

	// Alice had seen another generation 1 than the network now shows (a
	// second history, made with a stolen next key): refused until she
	// verifies.
	book, err := loadContacts(alice)
	if err != nil {
		t.Fatal(err)
	}
	p := book.Pins[addr]
	if p == nil || len(p.Keys) != 2 {
		t.Fatalf("pin after the rotation: %+v", p)
	}
	p.Keys[1] = strings.Repeat("ab", 32)
	if err := book.save(alice); err != nil {
		t.Fatal(err)
	}
	if err := send(); !errors.Is(err, record.ErrKeyChanged) || !strings.Contains(err.Error(), "contacts verify bob") {
		t.Fatalf("send to a key changed outside its history: %v, want ErrKeyChanged with advice", err)
	}
	out := mustRun(t, append(append([]string{"--home", alice, "contacts", "verify"}, tn...), "bob")...)
	if !strings.Contains(out, "CHANGED") {
		t.Fatalf("contacts verify does not say the key changed:\n%s", out)
	}
	if err := send(); !errors.Is(err, record.ErrKeyChanged) {
		t.Fatalf("send after verify without --confirm: %v", err)
	}
	mustRun(t, append(append([]string{"--home", alice, "contacts", "verify", "--confirm"}, tn...), "bob")...)
	if err := send(); err != nil {
		t.Fatalf("send after contacts verify --confirm: %v", err)
	}
	if list := mustRun(t, "--home", alice, "contacts", "list"); !strings.Contains(list, "verified, generation 1") {
		t.Fatalf("contacts list after verify --confirm:\n%s", list)
	}
}

func TestKeyMoveTellsSendersTheNewAddress(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a loopback testnet")
	}
	net := startTestTestnet(t, hangGuard(t), 4, t.TempDir())
	homes := t.TempDir()
	bob, bob2, alice := filepath.Join(homes, "bob"), filepath.Join(homes, "bob2"), filepath.Join(homes, "alice")
	tn := []string{"--testnet", net.Dir()}
	mustRun(t, append([]string{"--home", bob, "init", "--no-passphrase", "--difficulty", "4", "--publish"}, tn...)...)
	mustRun(t, append([]string{"--home", bob2, "init", "--no-passphrase", "--difficulty", "4", "--publish"}, tn...)...)
	mustRun(t, append([]string{"--home", alice, "init", "--no-passphrase", "--difficulty", "4", "--publish"}, tn...)...)
	addr := strings.TrimSpace(mustRun(t, "--home", bob, "whoami"))
	addr2 := strings.TrimSpace(mustRun(t, "--home", bob2, "whoami"))

	mustRun(t, append([]string{"--home", alice, "contacts", "add"}, append(tn, "bob", addr)...)...)
	mustRun(t, append([]string{"--home", bob, "key", "move", "--to-home", bob2, "--yes"}, tn...)...)
	// Without consent the move is not followed: nothing is sent, and the
	// error names the new address and --yes.
	_, _, err := runCLI(t, append([]string{"--home", alice, "send", "--to", "bob", "--body", "hi"}, tn...)...)
	if !errors.Is(err, record.ErrMoved) || !strings.Contains(err.Error(), addr2) || !strings.Contains(err.Error(), "--yes") {
		t.Fatalf("send to a moved address: %v, want ErrMoved naming %s and --yes", err, addr2)
	}
	if list := mustRun(t, append([]string{"--home", alice, "contacts", "list", "--check"}, tn...)...); !strings.Contains(list, "MOVED to "+addr2) {
		t.Fatalf("contacts list --check after bob moved:\n%s", list)
	}
	// With --yes the move is checked and followed: the mail goes to the
	// new address, and the contact names it from now on.
	if _, stderr, err := runCLI(t, append([]string{"--home", alice, "send", "--yes", "--to", "bob", "--body", "followed"}, tn...)...); err != nil || !strings.Contains(stderr, "followed the move") {
		t.Fatalf("send --yes to a moved contact: %v\n%s", err, stderr)
	}
	if list := mustRun(t, "--home", alice, "contacts", "list"); !strings.Contains(list, addr2) || strings.Contains(list, addr) {
		t.Fatalf("contacts list after following the move:\n%s", list)
	}
	mustRun(t, append([]string{"--home", bob2, "fetch"}, tn...)...)
	if n := mailsIn(t, bob2); n != 1 {
		t.Fatalf("%d mails at the new address after following the move, want 1", n)
	}
	mustRun(t, append([]string{"--home", alice, "send", "--to", addr2, "--body", "hi"}, tn...)...)
	if _, stderr, _ := runCLI(t, "--home", bob, "whoami"); !strings.Contains(stderr, "moved to "+addr2) {
		t.Fatalf("whoami after the move:\n%s", stderr)
	}
}
