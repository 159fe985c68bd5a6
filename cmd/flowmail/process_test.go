package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildBinary compiles the flowmail binary once for a test.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "flowmail")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestBinaryAcrossProcesses drives the real binary: a testnet in one
// process, then init, publish, send and fetch each in their own.
func TestBinaryAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	ctx := hangGuard(t)

	tn := exec.CommandContext(ctx, bin, "testnet", "--nodes", "6", "--dir", filepath.Join(dir, "net"))
	tn.Cancel = func() error { return tn.Process.Signal(syscall.SIGINT) }
	tn.WaitDelay = 10 * time.Second // then killed, before its directory goes
	stdout, err := tn.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var tnErr bytes.Buffer
	tn.Stderr = &tnErr
	if err := tn.Start(); err != nil {
		t.Fatal(err)
	}
	waitTestnetRunning(t, ctx, stdout, &tnErr)

	flowmail := func(home string, stdin string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, append([]string{"--home", filepath.Join(dir, home)}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("flowmail %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out.String(), errb.String())
		}
		return out.String()
	}
	netDir := filepath.Join(dir, "net")
	flowmail("alice", "", "init", "--no-passphrase", "--difficulty", "10")
	flowmail("bob", "", "init", "--no-passphrase", "--difficulty", "10")
	bob := strings.TrimSpace(flowmail("bob", "", "whoami"))
	flowmail("bob", "", "publish", "--testnet", netDir)
	flowmail("alice", "", "contacts", "add", "bob", bob)
	attach := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(attach, []byte("attached notes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	flowmail("alice", "Meet at noon by the fountain.\n", "send", "--testnet", netDir, "--to", "bob", "--subject", "Across processes", "--attach", attach)
	got := flowmail("bob", "", "fetch", "--testnet", netDir)
	if !strings.Contains(got, "Subject: Across processes") {
		t.Fatalf("fetch printed %q", got)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "bob", "Maildir", "new", "*"))
	if len(files) != 1 {
		t.Fatalf("%d files in bob's Maildir/new, want 1", len(files))
	}
	msg, _ := os.ReadFile(files[0])
	for _, want := range []string{"Meet at noon by the fountain.", "notes.txt", "Subject: Across processes"} {
		if !bytes.Contains(msg, []byte(want)) {
			t.Errorf("delivered mail lacks %q", want)
		}
	}
	if again := flowmail("bob", "", "fetch", "--testnet", netDir); strings.Contains(again, "Subject:") {
		t.Fatalf("second fetch delivered again: %q", again)
	}

	// Keys that change, each step its own process: a thief who copied
	// bob's current key (not next.key) cannot rotate; bob rotates and
	// keeps his address, and alice's next mail reaches him under the new
	// key; bob revokes, and alice's send fails saying so, storing nothing.
	flowmailFails := func(home string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, append([]string{"--home", filepath.Join(dir, home)}, args...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err == nil {
			t.Fatalf("flowmail %s succeeded, want it refused\nstdout: %s", strings.Join(args, " "), out.String())
		}
		return errb.String()
	}
	if err := os.MkdirAll(filepath.Join(dir, "thief"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{keyFileName, keyLogFileName} {
		b, err := os.ReadFile(filepath.Join(dir, "bob", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "thief", f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if stderr := flowmailFails("thief", "key", "rotate", "--testnet", netDir); !strings.Contains(stderr, "next key") {
		t.Fatalf("a thief's rotation was refused without naming the missing next key:\n%s", stderr)
	}
	flowmail("bob", "", "key", "rotate", "--testnet", netDir)
	if got := strings.TrimSpace(flowmail("bob", "", "whoami")); got != bob {
		t.Fatalf("whoami after the rotation: %s, want the unchanged %s", got, bob)
	}
	flowmail("alice", "after the rotation\n", "send", "--testnet", netDir, "--to", "bob", "--subject", "Rotated")
	if got := flowmail("bob", "", "fetch", "--testnet", netDir); !strings.Contains(got, "Subject: Rotated") {
		t.Fatalf("fetch after the rotation printed %q", got)
	}
	flowmail("bob", "", "key", "revoke", "--yes", "--testnet", netDir)
	if stderr := flowmailFails("alice", "send", "--testnet", netDir, "--to", "bob", "--subject", "Revoked", "--body", "hello?"); !strings.Contains(stderr, "revoked") {
		t.Fatalf("send to a revoked address does not say revoked:\n%s", stderr)
	}
	if es, err := os.ReadDir(filepath.Join(dir, "alice", outboxDirName)); err == nil && len(es) != 0 {
		t.Fatalf("the refused send left %d entries in the outbox", len(es))
	}

	if err := tn.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := tn.Wait(); err != nil {
		t.Fatalf("testnet did not stop cleanly on SIGINT: %v\n%s", err, tnErr.String())
	}
}

// waitTestnetRunning waits until a `flowmail testnet` process prints that
// it is running, failing with its stderr if it exits first or the hang
// guard ends. Its stdout is read to the end, so the process never blocks
// on it.
func waitTestnetRunning(t *testing.T, ctx context.Context, stdout io.Reader, tnErr *bytes.Buffer) {
	t.Helper()
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		ok := false
		for sc.Scan() {
			if !ok && strings.Contains(sc.Text(), "is running") {
				ok = true
				ready <- true
			}
		}
		if !ok {
			ready <- false
		}
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("testnet exited before it was ready: %s", tnErr.String())
		}
	case <-ctx.Done():
		t.Fatalf("testnet not ready: %s", tnErr.String())
	}
}
