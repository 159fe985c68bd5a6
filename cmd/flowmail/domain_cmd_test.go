package main

import (
	"crypto/ed25519"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/naming"
	"github.com/flowmail/flowmail/record"
)

// TestDomainInitPrintsOneZoneLine: stdout is exactly the line to publish,
// the key file is 0600 and holds the key the line lists.
func TestDomainInitPrintsOneZoneLine(t *testing.T) {
	home := t.TempDir()
	t.Setenv("FLOWMAIL_PASSPHRASE", "domain secret")
	out, _, err := runCLI(t, "--home", home, "domain", "init", "Bücher.Example")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Fatalf("stdout is not one line: %q", out)
	}
	line := strings.TrimSuffix(out, "\n")
	const prefix = `_flowmail.xn--bcher-kva.example. IN TXT "`
	if !strings.HasPrefix(line, prefix) || !strings.HasSuffix(line, `"`) {
		t.Fatalf("not a zone-file TXT line for the A-label: %q", line)
	}
	rec, err := naming.ParseRecord(line[len(prefix) : len(line)-1])
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(home, "domains", "xn--bcher-kva.example.key")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %04o", fi.Mode().Perm())
	}
	k, err := identity.ReadSigningKeyFile(path, func() ([]byte, error) { return []byte("domain secret"), nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Keys) != 1 || naming.Key(k.Public().(ed25519.PublicKey)) != rec.Keys[0] {
		t.Fatal("the printed key is not the key in the file")
	}
	if _, _, err := runCLI(t, "--home", home, "domain", "init", "bücher.example"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second init: %v", err)
	}
}

func TestDomainInitWithServer(t *testing.T) {
	home := t.TempDir()
	srv := identity.FormatAddress([32]byte{1, 2, 3})
	out, _, err := runCLI(t, "--home", home, "domain", "init", "--no-passphrase", "--srv", srv, "--at", "mail.example.com:4433", "example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "; srv="+srv+"; at=mail.example.com:4433\"") {
		t.Fatalf("record without the server: %q", out)
	}
	for _, bad := range [][]string{
		{"--at", "mail.example.com"},
		{"--srv", "fm1nothing"},
		{},
	} {
		args := append([]string{"--home", t.TempDir(), "domain", "init", "--no-passphrase"}, bad...)
		if len(bad) > 0 {
			args = append(args, "example.com")
		} else {
			args = append(args, "ünï..example")
		}
		if o, _, err := runCLI(t, args...); err == nil || o != "" {
			t.Errorf("%v: stdout %q, err %v", bad, o, err)
		}
	}
}

// TestDomainRequestSignRevoke: the user's request, the domain's
// completion and its revocation, as files (no network: --no-publish).
// requestName makes owner a domain's owner (domain init of domain, which
// must lower-case to example.com), user an identity, and has user request
// name under the domain's key: it returns the domain's record and the
// request file.
func requestName(t *testing.T, owner, user, domain, name string) (*naming.Record, string) {
	t.Helper()
	zone, _, err := runCLI(t, "--home", owner, "domain", "init", "--no-passphrase", domain)
	if err != nil {
		t.Fatal(err)
	}
	txt := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(zone), `_flowmail.example.com. IN TXT "`), `"`)
	rec, err := naming.ParseRecord(txt)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCLI(t, "--home", user, "init", "--no-passphrase", "--difficulty", "8"); err != nil {
		t.Fatal(err)
	}
	reqFile := filepath.Join(user, "alice.request")
	if _, _, err := runCLI(t, "--home", user, "domain", "request", "--domain-key", naming.FormatKey(rec.Keys[0]), "--out", reqFile, name); err != nil {
		t.Fatal(err)
	}
	return rec, reqFile
}

func TestDomainRequestSignRevoke(t *testing.T) {
	owner, user := t.TempDir(), t.TempDir()
	rec, reqFile := requestName(t, owner, user, "Example.COM", "Alice@Example.com")
	out, _, err := runCLI(t, "--home", owner, "domain", "sign", "--no-publish", reqFile)
	if err != nil {
		t.Fatal(err)
	}
	certFile := strings.TrimSpace(out)
	if certFile != filepath.Join(owner, "domains", "example.com", "alice.cert") {
		t.Fatalf("certificate kept at %q", certFile)
	}
	cert, err := readCertFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := os.ReadFile(filepath.Join(user, "identity.pub"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := identity.ParsePubkey(addr)
	if err != nil {
		t.Fatal(err)
	}
	n := cert.Name
	if n.Name != "alice@example.com" || n.Address != pub.ID || n.DomainKey != rec.Keys[0] || n.Version.Seq != 1 || n.Version.Revoked {
		t.Fatalf("certificate %+v", n)
	}
	// A request for a key this home does not hold is refused.
	other := t.TempDir()
	if _, _, err := runCLI(t, "--home", other, "domain", "init", "--no-passphrase", "example.com"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCLI(t, "--home", other, "domain", "sign", "--no-publish", reqFile); !errors.Is(err, naming.ErrRequest) {
		t.Fatalf("signing with another key of the domain: %v", err)
	}
	if _, _, err := runCLI(t, "--home", owner, "domain", "revoke", "--no-publish", "alice@EXAMPLE.com"); err != nil {
		t.Fatal(err)
	}
	rev, err := readCertFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	if !rev.Name.Version.Revoked || rev.Name.Version.Seq != 2 || rev.Name.Version.Prev != block.Sum(cert.Bytes()) {
		t.Fatalf("revocation %+v", rev.Name.Version)
	}
	// Renewing after a revocation is refused: the slot is ended.
	if _, _, err := runCLI(t, "--home", user, "domain", "request", "--domain-key", naming.FormatKey(rec.Keys[0]), "--out", reqFile, "--after", certFile, "alice@example.com"); !errors.Is(err, record.ErrRevoked) {
		t.Fatalf("request after a revocation: %v", err)
	}
}

// A domain owner's node stores the certificates it keeps again by itself
// (naming.Republisher), and `domain publish --all` does it once, for
// cron: a certificate signed with --no-publish is found in the network
// after either.
func TestDomainCertsRepublished(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a loopback testnet")
	}
	ctx := hangGuard(t)
	net := startTestTestnet(t, ctx, 4, t.TempDir())
	owner, user := t.TempDir(), t.TempDir()
	_, reqFile := requestName(t, owner, user, "example.com", "alice@example.com")
	out, _, err := runCLI(t, "--home", owner, "domain", "sign", "--no-publish", reqFile)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := readCertFile(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	found := func() bool {
		t.Helper()
		c, err := net.Client(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		rd, err := recordsOf(c)
		if err != nil {
			t.Fatal(err)
		}
		r, _, err := rd.GetRecord(ctx, cert.Slot())
		return err == nil && string(r.Bytes()) == string(cert.Bytes())
	}
	if found() {
		t.Fatal("a certificate signed with --no-publish is in the network already")
	}

	// The owner's node (here a client of the testnet with the owner's
	// home) stores it in its first round.
	n, err := net.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	rounds := make(chan naming.Round, 4)
	stop := startCertRepublisher(ctx, owner, n, slog.New(slog.DiscardHandler), func(rd naming.Round, _ error) {
		select {
		case rounds <- rd:
		default:
		}
	})
	rd := <-rounds
	stop()
	if len(rd.Stored) != 1 || rd.Stored[0] != "alice@example.com" || !found() {
		t.Fatalf("the owner's republisher: %+v; found in the network: %v", rd, found())
	}

	// domain publish --all, for owners without a running node.
	_, stderr, err := runCLI(t, "--home", owner, "domain", "publish", "--all", "--testnet", net.Dir())
	if err != nil || !strings.Contains(stderr, "published 1 certificates again") {
		t.Fatalf("domain publish --all: %v\n%s", err, stderr)
	}
	if _, _, err := runCLI(t, "--home", user, "domain", "publish", "--all", "--testnet", net.Dir()); !errors.Is(err, errNoKeptCerts) {
		t.Fatalf("domain publish --all in a home that issued nothing: %v", err)
	}
}

// domain sign USER ADDRESS issues a certificate in one step when the
// user's identity is on this machine: co-signed by that identity, the
// next version when the name was certified before, refused for an
// address that is not the identity's.
func TestDomainSignInOneStep(t *testing.T) {
	owner, other := t.TempDir(), t.TempDir()
	if _, _, err := runCLI(t, "--home", owner, "domain", "init", "--no-passphrase", "example.com"); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{owner, other} {
		if _, _, err := runCLI(t, "--home", h, "init", "--no-passphrase", "--difficulty", "4"); err != nil {
			t.Fatal(err)
		}
	}
	me := strings.TrimSpace(mustRun(t, "--home", owner, "whoami"))
	them := strings.TrimSpace(mustRun(t, "--home", other, "whoami"))

	out := mustRun(t, "--home", owner, "domain", "sign", "--no-publish", "Owner", me)
	first, err := readCertFile(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	if first.Name.Name != "owner@example.com" || identity.FormatAddress(first.Name.Address) != me || first.Name.Version.Seq != 1 {
		t.Fatalf("one-step certificate: %+v", first.Name)
	}
	// Signed again: the next version, chained (a renewal).
	second, err := readCertFile(strings.TrimSpace(mustRun(t, "--home", owner, "domain", "sign", "--no-publish", "owner@example.com", me)))
	if err != nil || second.Name.Version.Seq != 2 || second.Name.Version.Prev != block.Sum(first.Bytes()) {
		t.Fatalf("second one-step signing: %+v, %v", second, err)
	}
	// Another identity's address without its identity is refused.
	if _, _, err := runCLI(t, "--home", owner, "domain", "sign", "--no-publish", "bob", them); err == nil || !strings.Contains(err.Error(), "co-signature") {
		t.Fatalf("one-step signing for an address this home does not hold: %v", err)
	}
	// With the user's home, it is theirs to co-sign.
	bob, err := readCertFile(strings.TrimSpace(mustRun(t, "--home", owner, "domain", "sign", "--no-publish", "--user-home", other, "bob@example.com", them)))
	if err != nil || identity.FormatAddress(bob.Name.Address) != them {
		t.Fatalf("one-step signing with --user-home: %+v, %v", bob, err)
	}
}
