package main

import (
	"bytes"
	"context"
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
	t.Setenv("FLOWMAIL_PASSPHRASE", "hunter3")
	_, _, err := runCLI(t, "--home", home, "whoami")
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
