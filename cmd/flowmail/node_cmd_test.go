package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"github.com/flowmail/flowmail/internal/syncbuf"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowmail/flowmail/node"
)

// runningNode is a `flowmail node` run in process by startNodeCommand.
type runningNode struct {
	listen, admin string
	lines         []string // what it printed up to its admin address
	stderr        *syncbuf.Buffer
	stop          func() error // cancels run's context, as SIGINT does, and returns run's error
}

// startNodeCommand runs `flowmail args...` (a node command) in process and returns
// once the node has printed its addresses. The test ends by calling
// stop; Cleanup stops it too.
func startNodeCommand(t *testing.T, args ...string) *runningNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	// A node that hangs while starting is stopped, which ends the wait
	// for its lines below.
	hung := time.AfterFunc(5*time.Minute, cancel)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	rn := &runningNode{stderr: &syncbuf.Buffer{}}
	go func() {
		err := run(ctx, append([]string{"flowmail"}, args...), strings.NewReader(""), pw, rn.stderr)
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	var once sync.Once
	var runErr error
	rn.stop = func() error {
		once.Do(func() {
			hung.Stop()
			cancel()
			runErr = <-done
		})
		return runErr
	}
	t.Cleanup(func() { rn.stop() })
	listenRE := regexp.MustCompile(`listening on (127\.0\.0\.1:\d+)`)
	adminRE := regexp.MustCompile(`--admin (127\.0\.0\.1:\d+)`)
	lines := bufio.NewScanner(pr)
	for rn.admin == "" && lines.Scan() {
		rn.lines = append(rn.lines, lines.Text())
		if m := listenRE.FindStringSubmatch(lines.Text()); m != nil {
			rn.listen = m[1]
		}
		if m := adminRE.FindStringSubmatch(lines.Text()); m != nil {
			rn.admin = m[1]
		}
	}
	if rn.admin == "" || rn.listen == "" {
		t.Fatalf("the node never printed its addresses: %v\n%s", rn.stop(), rn.stderr)
	}
	go io.Copy(io.Discard, pr)
	return rn
}

// TestNodeRunsFromConfigAndAnswersStatus starts `flowmail node` with a
// config file, asks it for its status like an operator would, and stops
// it the way SIGINT does (cancelling run's context). The log level on
// the command line beats the config file's.
func TestNodeRunsFromConfigAndAnswersStatus(t *testing.T) {
	home := t.TempDir()
	cfg := "listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nquota = \"64MiB\"\nno-mainline = true\nlog-level = \"error\"\n"
	if err := os.WriteFile(filepath.Join(home, "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	rn := startNodeCommand(t, "--home", home, "--log-level", "info", "node")
	out, _, err := runCLI(t, "node", "status", "--admin", rn.admin)
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
	if err := rn.stop(); err != nil {
		t.Fatalf("node did not shut down cleanly: %v", err)
	}
	// Info records appear: --log-level info won over log-level = "error".
	if log := rn.stderr.String(); !strings.Contains(log, `msg="node started"`) {
		t.Errorf("--log-level info on the command line lost to the config file's error:\n%s", log)
	}
	if _, _, err := runCLI(t, "node", "status", "--admin", rn.admin); err == nil || !strings.Contains(err.Error(), "flowmail node") {
		t.Fatalf("status of a stopped node: %v", err)
	}
}

// TestClientsFindANodeOnAnyAdminPort: a node started with an admin port
// of its own is found by `node status --config FILE` and by the clients
// (send, fetch, publish) with no flag at all, through the address it
// writes into its data directory. A client with the wrong --network is
// told so from its own side.
func TestClientsFindANodeOnAnyAdminPort(t *testing.T) {
	home := t.TempDir()
	config := filepath.Join(t.TempDir(), "node.toml")
	cfg := "listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nno-mainline = true\nnetwork = \"admin-test\"\n"
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	rn := startNodeCommand(t, "--home", home, "node", "--config", config)
	out, _, err := runCLI(t, "--home", home, "node", "status", "--config", config)
	if err != nil || !strings.Contains(out, "admin-test") {
		t.Fatalf("node status --config: %v\n%s", err, out)
	}
	if _, _, err := runCLI(t, "--home", home, "init", "--no-passphrase"); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := runCLI(t, "--home", home, "publish")
	if err != nil || !strings.Contains(stderr, "using the local node") {
		t.Fatalf("publish did not find the node on its admin port %s: %v\n%s%s", rn.admin, err, out, stderr)
	}
	_, _, err = runCLI(t, "--home", home, "publish", "--bootstrap", rn.listen, "--network", "flowmail")
	if err == nil || !strings.Contains(err.Error(), "--network") || strings.Contains(err.Error(), "we are on") {
		t.Fatalf("a client on the wrong network: %v; want advice naming --network, in the user's terms", err)
	}
	help, _, err := runCLI(t, "send", "--help")
	if err != nil || !strings.Contains(help, "FLOWMAIL_ADMIN") {
		t.Fatalf("send --help does not mention FLOWMAIL_ADMIN: %v\n%s", err, help)
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
