package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoopbackOfAWildcardListenAddress(t *testing.T) {
	for in, want := range map[string]string{
		"[::]:4410":         "127.0.0.1:4410", // Go's wildcard socket is dual-stack
		"0.0.0.0:5":         "127.0.0.1:5",
		"127.0.0.1:7":       "127.0.0.1:7",
		"[::1]:8":           "[::1]:8",
		"not an address:99": "not an address:99",
	} {
		if got := loopbackOf(in); got != want {
			t.Errorf("loopbackOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestClientJoinPrecedence: what the command line says beats the
// environment, and the user's own default testnet is found, but not one
// that others could have written.
func TestClientJoinPrecedence(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a loopback testnet")
	}
	ctx := hangGuard(t)
	runtime := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", runtime)
	dir := defaultTestnetDir()
	if dir != filepath.Join(runtime, "flowmail-testnet") {
		t.Fatalf("default testnet dir %s is not under XDG_RUNTIME_DIR", dir)
	}
	startTestTestnet(t, ctx, 3, dir)
	home := t.TempDir()
	if _, _, err := runCLI(t, "--home", home, "init", "--no-passphrase"); err != nil {
		t.Fatal(err)
	}
	// A dead peer in the environment (port 9, discard, nobody there).
	t.Setenv("FLOWMAIL_BOOTSTRAP", "127.0.0.1:9")
	t.Setenv("FLOWMAIL_ADMIN", "") // no local node
	if _, stderr, err := runCLI(t, "--home", home, "publish", "--testnet", dir); err != nil {
		t.Fatalf("--testnet on the command line lost to FLOWMAIL_BOOTSTRAP: %v\n%s", err, stderr)
	}
	if _, _, err := runCLI(t, "--home", home, "publish", "--testnet", dir, "--bootstrap", "127.0.0.2:9"); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Fatalf("--testnet and --bootstrap together: %v", err)
	}

	os.Unsetenv("FLOWMAIL_BOOTSTRAP")
	_, stderr, err := runCLI(t, "--home", home, "publish")
	if err != nil || !strings.Contains(stderr, "using the testnet in "+dir) {
		t.Fatalf("publish with no flags did not use the default testnet: %v\n%s", err, stderr)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o700)
	if _, _, err := runCLI(t, "--home", home, "publish"); err == nil || !strings.Contains(err.Error(), "writable by others") {
		t.Fatalf("a world-writable default testnet was joined: %v", err)
	}
}
