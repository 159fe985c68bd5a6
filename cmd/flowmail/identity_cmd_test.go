package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowmail/flowmail/identity"
)

// runCLI runs the CLI in process and returns stdout, stderr and the error.
func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), append([]string{"flowmail"}, args...), strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), err
}

func TestInitThenWhoamiPrintsTheSameAddress(t *testing.T) {
	home := t.TempDir()
	out, _, err := runCLI(t, "--home", home, "init", "--no-passphrase", "--difficulty", "9")
	if err != nil {
		t.Fatal(err)
	}
	who, info, err := runCLI(t, "--home", home, "whoami")
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimSpace(who)
	if _, err := identity.ParseAddress(addr); err != nil {
		t.Fatalf("whoami printed %q: %v", who, err)
	}
	if !strings.Contains(out, addr) {
		t.Fatalf("init printed %q, whoami %q", out, addr)
	}
	if !strings.Contains(info, "difficulty: 9 bits") {
		t.Fatalf("whoami details: %q", info)
	}
}

func TestInitRefusesToReplaceAnIdentity(t *testing.T) {
	home := t.TempDir()
	if _, _, err := runCLI(t, "--home", home, "init", "--no-passphrase"); err != nil {
		t.Fatal(err)
	}
	_, _, err := runCLI(t, "--home", home, "init", "--no-passphrase")
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second init: %v", err)
	}
}

func TestPassphraseProtectedIdentity(t *testing.T) {
	home := t.TempDir()
	t.Setenv("FLOWMAIL_PASSPHRASE", "hunter2")
	if _, _, err := runCLI(t, "--home", home, "init"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCLI(t, "--home", home, "whoami"); err != nil {
		t.Fatal(err)
	}
	// whoami reads only the public half; publish unlocks the key.
	t.Setenv("FLOWMAIL_PASSPHRASE", "hunter3")
	_, _, err := runCLI(t, "--home", home, "publish", "--bootstrap", "127.0.0.1:9")
	if err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Fatalf("wrong passphrase: %v", err)
	}
}

func TestWhoamiWithoutIdentitySaysWhatToDo(t *testing.T) {
	_, _, err := runCLI(t, "--home", t.TempDir(), "whoami")
	if err == nil || !strings.Contains(err.Error(), "flowmail init") {
		t.Fatalf("got %v", err)
	}
}

func TestInitWithoutPassphraseSourceFails(t *testing.T) {
	_, _, err := runCLI(t, "--home", t.TempDir(), "init")
	if err == nil || !strings.Contains(err.Error(), "FLOWMAIL_PASSPHRASE") {
		t.Fatalf("got %v", err)
	}
}

// TestWhoamiNeedsNoPassphrase: printing the public address of a
// protected identity does not unlock it.
func TestWhoamiNeedsNoPassphrase(t *testing.T) {
	home := t.TempDir()
	t.Setenv("FLOWMAIL_PASSPHRASE", "hunter2")
	out, _, err := runCLI(t, "--home", home, "init", "--difficulty", "11")
	if err != nil {
		t.Fatal(err)
	}
	os.Unsetenv("FLOWMAIL_PASSPHRASE") // and stdin is no terminal: asking would fail
	who, info, err := runCLI(t, "--home", home, "whoami")
	if err != nil {
		t.Fatalf("whoami asked for the passphrase: %v", err)
	}
	if addr := strings.TrimSpace(who); addr == "" || !strings.Contains(out, addr) || !strings.Contains(info, "difficulty: 11 bits") {
		t.Fatalf("whoami printed %q / %q; init said %q", who, info, out)
	}
}

// TestMissingPassphraseFileIsNotAMissingIdentity: a --passphrase-file
// that is not there is reported as such, not as "no identity".
func TestMissingPassphraseFileIsNotAMissingIdentity(t *testing.T) {
	home := t.TempDir()
	t.Setenv("FLOWMAIL_PASSPHRASE", "hunter2")
	if _, _, err := runCLI(t, "--home", home, "init"); err != nil {
		t.Fatal(err)
	}
	os.Unsetenv("FLOWMAIL_PASSPHRASE")
	missing := filepath.Join(t.TempDir(), "nope.txt")
	_, _, err := runCLI(t, "--home", home, "publish", "--passphrase-file", missing, "--bootstrap", "127.0.0.1:9")
	if err == nil || !strings.Contains(err.Error(), "--passphrase-file") || !strings.Contains(err.Error(), missing) || strings.Contains(err.Error(), "flowmail init") {
		t.Fatalf("missing passphrase file: %v", err)
	}
}
