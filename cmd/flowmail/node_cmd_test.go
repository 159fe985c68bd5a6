package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flowmail/flowmail/node"
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
	// A node that hangs while starting is stopped, which ends the wait
	// for its admin line below.
	hung := time.AfterFunc(time.Minute, cancel)
	defer hung.Stop()
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

// TestNodeStatusFindsTheAdminAddressInTheConfig: `node status` asks the
// address the config file gives the node, and prints what it gets even
// when the answer is odd (a short peer ID).
func TestNodeStatusFindsTheAdminAddressInTheConfig(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(node.Status{ID: "abc", Network: "from-the-config", Listen: "127.0.0.1:1",
			Peers: []node.PeerStatus{{ID: "short", Addr: "127.0.0.1:2"}}})
	}))
	defer srv.Close()
	home := t.TempDir()
	cfg := fmt.Sprintf("admin = %q\n", srv.Listener.Addr().String())
	if err := os.WriteFile(filepath.Join(home, "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCLI(t, "--home", home, "node", "status")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "from-the-config") || !strings.Contains(out, "short") {
		t.Fatalf("status did not come from the config's admin address:\n%s", out)
	}
}

func TestConfigWithAnUnknownSettingIsRefused(t *testing.T) {
	home := t.TempDir()
	if err := os.WriteFile(filepath.Join(home, "config.toml"), []byte("lisen = \"127.0.0.1:0\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := runCLI(t, "--home", home, "node", "--no-mainline")
	if err == nil || !strings.Contains(err.Error(), `unknown setting "lisen"`) {
		t.Fatalf("node with a misspelt setting: %v", err)
	}
}

func TestFetchWatchRefusesANonPositiveInterval(t *testing.T) {
	home := t.TempDir()
	if _, _, err := runCLI(t, "--home", home, "init", "--no-passphrase"); err != nil {
		t.Fatal(err)
	}
	_, _, err := runCLI(t, "--home", home, "fetch", "--watch", "--interval", "0s", "--bootstrap", "127.0.0.1:9")
	if err == nil || !strings.Contains(err.Error(), "--interval") {
		t.Fatalf("fetch --watch --interval 0: %v", err)
	}
}
