package main

import (
	"bufio"
	"context"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/flowmail/flowmail/internal/syncbuf"
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

// runningBridge is a `flowmail bridge` run in process by
// startBridgeCommand.
type runningBridge struct {
	smtp   string      // its SMTP address
	lines  chan string // what it prints after its addresses ("sent ID", …)
	stderr *syncbuf.Buffer
	stop   func() error // cancels run's context, as SIGINT does, and returns run's error
}

// startBridgeCommand runs `flowmail args...` (a bridge command) in
// process and returns once it listens; ctx is the test's hang guard.
// Cleanup stops it.
func startBridgeCommand(t *testing.T, ctx context.Context, args ...string) *runningBridge {
	t.Helper()
	runCtx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	rb := &runningBridge{lines: make(chan string, 256), stderr: &syncbuf.Buffer{}}
	go func() {
		err := run(runCtx, append([]string{"flowmail"}, args...), strings.NewReader(""), pw, rb.stderr)
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	addr := make(chan string, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		re := regexp.MustCompile(`^IMAP 127\.0\.0\.1:\d+, SMTP (127\.0\.0\.1:\d+)`)
		lines := bufio.NewScanner(pr)
		for lines.Scan() {
			if m := re.FindStringSubmatch(lines.Text()); m != nil {
				addr <- m[1]
				continue
			}
			select {
			case rb.lines <- lines.Text():
			default: // more than a test waits for
			}
		}
	}()
	var once sync.Once
	var runErr error
	rb.stop = func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
			<-scanned
		})
		return runErr
	}
	t.Cleanup(func() { rb.stop() })
	select {
	case rb.smtp = <-addr:
	case <-scanned:
		t.Fatalf("the bridge stopped before it listened: %v\n%s", rb.stop(), rb.stderr)
	case <-ctx.Done():
		t.Fatalf("the bridge did not listen before the hang guard: %v\n%s", rb.stop(), rb.stderr)
	}
	return rb
}

// waitLine waits for a line the bridge prints that starts with prefix.
func (rb *runningBridge) waitLine(t *testing.T, ctx context.Context, prefix string) string {
	t.Helper()
	for {
		select {
		case l := <-rb.lines:
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-ctx.Done():
			t.Fatalf("the bridge printed no %q line before the hang guard:\n%s", prefix, rb.stderr)
		}
	}
}
