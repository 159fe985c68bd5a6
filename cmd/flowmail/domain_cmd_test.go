package main

import (
	"crypto/ed25519"
	"errors"
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
func TestDomainRequestSignRevoke(t *testing.T) {
	owner, user := t.TempDir(), t.TempDir()
	zone, _, err := runCLI(t, "--home", owner, "domain", "init", "--no-passphrase", "Example.COM")
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
	if _, _, err := runCLI(t, "--home", user, "domain", "request", "--domain-key", naming.FormatKey(rec.Keys[0]), "--out", reqFile, "Alice@Example.com"); err != nil {
		t.Fatal(err)
	}
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
