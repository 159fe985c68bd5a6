package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gomail "github.com/emersion/go-message/mail"

	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/nsdtest"
	"github.com/flowmail/flowmail/naming"
	"github.com/flowmail/flowmail/record"
	"github.com/flowmail/flowmail/testnet"
)

// TestSendToAName runs issue 14's story through the commands, over a
// loopback QUIC testnet and a real DNS server (nsd): the domain's owner
// publishes its key in DNS and certifies alice, bob sends to
// Alice@Example.Test and alice fetches the mail; the domain re-binds the
// name to another key and bob's next send is refused until he accepts
// it; the domain revokes the name and sends to it are refused. It skips
// (after checking the command says why) when the DHT of this build keeps
// no records at their slots.
func TestSendToAName(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a loopback testnet and nsd")
	}
	ctx := hangGuard(t)
	owner, homes := t.TempDir(), t.TempDir()
	zone, stderr, err := runCLI(t, "--home", owner, "domain", "init", "--no-passphrase", "example.test")
	if err != nil {
		t.Fatalf("domain init: %v\n%s", err, stderr)
	}
	dns := nsdtest.Start(t, ctx, "example.test", zone)
	net := startTestTestnet(t, ctx, 4, t.TempDir())
	users := map[string]*testnet.User{}
	for _, name := range []string{"alice", "alice2", "bob"} {
		u, err := testnet.NewUser(filepath.Join(homes, name), 8)
		if err != nil {
			t.Fatal(err)
		}
		if _, stderr, err := runCLI(t, "--home", u.Home, "publish", "--testnet", net.Dir()); err != nil {
			t.Fatalf("publish %s: %v\n%s", name, err, stderr)
		}
		users[name] = u
	}
	alice, alice2, bob := users["alice"], users["alice2"], users["bob"]
	send := func(to, body string) (string, error) {
		t.Helper()
		_, stderr, err := runCLI(t, "--home", bob.Home, "send", "--testnet", net.Dir(), "--dns-server", dns.Addr,
			"--to", to, "--subject", "hello", "--body", body)
		return stderr, err
	}

	// Names the DNS does not publish fail on their own, before the DHT.
	if _, err := send("carol@nowhere.example.test", "x"); !errors.Is(err, naming.ErrNoRecord) || !strings.Contains(err.Error(), "--dns-server") {
		t.Fatalf("a domain without a record: %v", err)
	}

	c, err := net.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, noRecords := recordsOf(c)
	c.Close()
	if noRecords != nil {
		if _, err := send("alice@example.test", "x"); !errors.Is(err, errNoRecordDHT) {
			t.Fatalf("send to a name without records in the DHT: %v", err)
		}
		t.Skip("this build's DHT keeps no records at their slots (kademlia PutRecord/GetRecord, branch wt/keys): " +
			"send says so; the rest of the story needs them")
	}

	// alice asks for the name, the domain's owner signs and publishes.
	certify := func(u *testnet.User, after string) {
		t.Helper()
		req := filepath.Join(u.Home, "name.request")
		args := []string{"--home", u.Home, "domain", "request", "--dns-server", dns.Addr, "--out", req}
		if after != "" {
			args = append(args, "--after", after)
		}
		if _, stderr, err := runCLI(t, append(args, "alice@example.test")...); err != nil {
			t.Fatalf("domain request: %v\n%s", err, stderr)
		}
		if _, stderr, err := runCLI(t, "--home", owner, "domain", "sign", "--testnet", net.Dir(), req); err != nil {
			t.Fatalf("domain sign: %v\n%s", err, stderr)
		}
	}
	certify(alice, "")

	// contacts add resolves a name as send does, pins the name and the
	// key history of the address it names, and keeps a petname for it.
	carol := filepath.Join(homes, "carol")
	if _, stderr, err := runCLI(t, "--home", carol, "contacts", "add", "--testnet", net.Dir(), "--dns-server", dns.Addr, "ally", "alice@example.test"); err != nil {
		t.Fatalf("contacts add ally alice@example.test: %v\n%s", err, stderr)
	}
	names, err := loadNames(carol)
	if err != nil {
		t.Fatal(err)
	}
	contacts, err := loadContacts(carol)
	if err != nil {
		t.Fatal(err)
	}
	if p := names.Names["alice@example.test"]; p.Address != identity.FormatAddress(alice.ID()) ||
		contacts.Contacts["ally"] != identity.FormatAddress(alice.ID()) || contacts.Pins[identity.FormatAddress(alice.ID())] == nil {
		t.Fatalf("after contacts add of a name: name pin %+v, contacts %+v, pins %+v", p, contacts.Contacts, contacts.Pins)
	}

	stderr, err = send("Alice@Example.Test", "first by name")
	if err != nil {
		t.Fatalf("send to alice@example.test: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "pinned") {
		t.Errorf("the first send does not say the name was pinned: %s", stderr)
	}
	book, err := loadNames(bob.Home)
	if err != nil {
		t.Fatal(err)
	}
	if p := book.Names["alice@example.test"]; p.Address != identity.FormatAddress(alice.ID()) {
		t.Fatalf("bob's pin: %+v", p)
	}
	if _, stderr, err := runCLI(t, "--home", alice.Home, "fetch", "--testnet", net.Dir()); err != nil {
		t.Fatalf("alice's fetch: %v\n%s", err, stderr)
	}
	h, msg := oneMail(t, alice.Maildir())
	to, err := h.AddressList("To")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(msg, []byte("first by name")) || len(to) != 1 || to[0].Name != "alice@example.test" ||
		to[0].Address != identity.FormatAddress(alice.ID())+"@flowmail.invalid" {
		t.Fatalf("alice's mail does not show the name it was sent to (To %v):\n%s", to, msg)
	}

	// alice carries her certificate: bob's fetch shows her name in From.
	if _, stderr, err := runCLI(t, "--home", alice.Home, "send", "--testnet", net.Dir(), "--dns-server", dns.Addr,
		"--as", "alice@example.test", "--to", identity.FormatAddress(bob.ID()), "--subject", "hi", "--body", "signed with my name"); err != nil {
		t.Fatalf("send --as: %v\n%s", err, stderr)
	}
	if _, stderr, err := runCLI(t, "--home", bob.Home, "fetch", "--testnet", net.Dir(), "--dns-server", dns.Addr); err != nil {
		t.Fatalf("bob's fetch: %v\n%s", err, stderr)
	}
	if _, stderr, err := runCLI(t, "--home", alice.Home, "whoami"); err != nil || !strings.Contains(stderr, "name:       alice@example.test (certificate checked ") {
		t.Fatalf("whoami after send --as: %v\n%s", err, stderr)
	}
	from := fromOf(t, bob.Maildir())
	if from.Name != "alice@example.test" || from.Address != identity.FormatAddress(alice.ID())+"@flowmail.invalid" {
		t.Fatalf("bob's mail is From %v, want alice@example.test <%s@flowmail.invalid>", from, identity.FormatAddress(alice.ID()))
	}
	// alice2 cannot carry alice's name.
	if _, _, err := runCLI(t, "--home", alice2.Home, "send", "--testnet", net.Dir(), "--dns-server", dns.Addr,
		"--as", "alice@example.test", "--to", identity.FormatAddress(bob.ID()), "--body", "x"); err == nil || !strings.Contains(err.Error(), "not to you") {
		t.Fatalf("send --as someone else's name: %v", err)
	}

	// The domain re-binds the name to alice2: refused with the warning,
	// sent after bob accepts.
	certify(alice2, certPath(owner, "alice@example.test"))
	if _, err := send("alice@example.test", "second"); !errors.Is(err, naming.ErrRebound) || !strings.Contains(err.Error(), "names accept alice@example.test") {
		t.Fatalf("send after a re-binding: %v", err)
	}
	if _, stderr, err := runCLI(t, "--home", bob.Home, "names", "accept", "--testnet", net.Dir(), "--dns-server", dns.Addr, "alice@example.test"); err != nil {
		t.Fatalf("names accept: %v\n%s", err, stderr)
	}
	if stderr, err := send("alice@example.test", "second"); err != nil {
		t.Fatalf("send after accepting: %v\n%s", err, stderr)
	}

	// The domain revokes the name.
	if _, stderr, err := runCLI(t, "--home", owner, "domain", "revoke", "--testnet", net.Dir(), "alice@example.test"); err != nil {
		t.Fatalf("domain revoke: %v\n%s", err, stderr)
	}
	if _, err := send("alice@example.test", "third"); !errors.Is(err, record.ErrRevoked) {
		t.Fatalf("send after the revocation: %v", err)
	}
}

// oneMail reads the one mail in maildir/new: its header and its bytes.
func oneMail(t *testing.T, maildir string) (gomail.Header, []byte) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(maildir, "new", "*"))
	if len(files) != 1 {
		t.Fatalf("%d mails in %s, want 1", len(files), maildir)
	}
	msg, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	mr, err := gomail.CreateReader(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	return mr.Header, msg
}

// fromOf reads the From of the one mail in maildir/new.
func fromOf(t *testing.T, maildir string) *gomail.Address {
	t.Helper()
	h, msg := oneMail(t, maildir)
	from, err := h.AddressList("From")
	if err != nil || len(from) != 1 {
		t.Fatalf("From: %v %v\n%s", from, err, msg)
	}
	t.Logf("From %v, %s: %s", from[0], nameHeader, h.Get(nameHeader))
	return from[0]
}
