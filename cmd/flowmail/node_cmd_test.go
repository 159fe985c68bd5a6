package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestNodeRunsFromConfigAndAnswersStatus starts `flowmail node` with a
// config file, asks it for its status like an operator would, and stops
// it the way SIGINT does (cancelling run's context).
func TestNodeRunsFromConfigAndAnswersStatus(t *testing.T) {
	home := t.TempDir()
	cfg := "listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nquota = \"64MiB\"\nno-mainline = true\nlog-level = \"error\"\n"
	if err := os.WriteFile(filepath.Join(home, "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"flowmail", "--home", home, "node"}, strings.NewReader(""), pw, io.Discard)
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	adminRE := regexp.MustCompile(`--admin (127\.0\.0\.1:\d+)`)
	lines := bufio.NewScanner(pr)
	admin := ""
	for admin == "" && lines.Scan() {
		if m := adminRE.FindStringSubmatch(lines.Text()); m != nil {
			admin = m[1]
		}
	}
	if admin == "" {
		t.Fatalf("the node never printed its admin address: %v", <-done)
	}
	go io.Copy(io.Discard, pr)

	out, _, err := runCLI(t, "node", "status", "--admin", admin)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"(full node)", "listen   127.0.0.1:", "of 64 MiB", "peers    0"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(home, "node", "node.key")); err != nil {
		t.Errorf("node key not in <home>/node: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("node did not shut down cleanly: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("node did not stop within 30 s of being cancelled")
	}
	if _, _, err := runCLI(t, "node", "status", "--admin", admin); err == nil || !strings.Contains(err.Error(), "flowmail node") {
		t.Fatalf("status of a stopped node: %v", err)
	}
}
