package main

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/naming"
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
