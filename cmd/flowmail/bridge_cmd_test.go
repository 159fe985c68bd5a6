package main

import (
	"strings"
	"testing"
)

func TestBridgePasswordPrintsTwoLinesAndResetChangesIt(t *testing.T) {
	home := t.TempDir()
	if _, _, err := runCLI(t, "--home", home, "init", "--no-passphrase"); err != nil {
		t.Fatal(err)
	}
	addr, _, err := runCLI(t, "--home", home, "whoami")
	if err != nil {
		t.Fatal(err)
	}
	first, _, err := runCLI(t, "--home", home, "bridge", "password")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(first, "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "username: fm1") || !strings.Contains(addr, strings.TrimPrefix(lines[0], "username: ")) ||
		!strings.HasPrefix(lines[1], "password: ") || len(lines[1]) != len("password: ")+24 {
		t.Fatalf("bridge password printed %q", first)
	}
	again, _, _ := runCLI(t, "--home", home, "bridge", "password")
	reset, _, _ := runCLI(t, "--home", home, "bridge", "password", "--reset")
	if again != first || reset == first || !strings.HasPrefix(reset, lines[0]+"\n") {
		t.Fatalf("again %q, reset %q, first %q", again, reset, first)
	}
}

func TestBridgePrintsClientConfigs(t *testing.T) {
	home := t.TempDir()
	if _, _, err := runCLI(t, "--home", home, "init", "--no-passphrase"); err != nil {
		t.Fatal(err)
	}
	for client, want := range map[string]string{
		"mbsync":      "Port 1143",
		"neomutt":     "imap://127.0.0.1:1143/",
		"thunderbird": "port 1025",
	} {
		out, _, err := runCLI(t, "--home", home, "bridge", "--print-config", client)
		if err != nil || !strings.Contains(out, want) || !strings.Contains(out, "fm1") {
			t.Errorf("%s: %v\n%s", client, err, out)
		}
	}
	if _, _, err := runCLI(t, "--home", home, "bridge", "--print-config", "outlook"); err == nil || !strings.Contains(err.Error(), "thunderbird, neomutt or mbsync") {
		t.Fatalf("unknown client: %v", err)
	}
	if _, _, err := runCLI(t, "--home", home, "bridge", "--imap", "0.0.0.0:1143", "--testnet", t.TempDir()); err == nil || !strings.Contains(err.Error(), "--allow-remote") {
		t.Fatalf("non-loopback address: %v", err)
	}
}
