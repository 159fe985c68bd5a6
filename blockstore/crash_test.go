package blockstore

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
)

// crashChildEnv switches the test binary into the child of
// TestAcknowledgedPutSurvivesKill; its value is the store directory.
const crashChildEnv = "FLOWMAIL_BLOCKSTORE_CRASH_CHILD"

const ackPrefix = "ack "

// runCrashChild stores blocks from several goroutines until it is killed,
// printing each ID once Put has acknowledged it.
func runCrashChild(t *testing.T, dir string) {
	s, err := OpenBadger(dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	// The parent kills us; if it dies first, our stdin (its pipe) closes
	// and we stop: no timer that a busy machine could outrun.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	var out sync.Mutex
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			fx := testFixtures(t, uint64(w)+100)
			for i := 0; ctx.Err() == nil; i++ {
				b, _ := fx.data(1024 + (i%16)*1024)
				id, err := s.Put(ctx, b, time.Hour, PutOptions{})
				if err != nil {
					return
				}
				out.Lock()
				fmt.Fprintf(os.Stdout, "%s%s\n", ackPrefix, id)
				out.Unlock()
			}
		})
	}
	wg.Wait()
	s.Close()
}

func TestAcknowledgedPutSurvivesKill(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		runCrashChild(t, dir)
		return
	}
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestAcknowledgedPutSurvivesKill$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	stdin, err := cmd.StdinPipe() // closed when we end: the child stops
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	const killAfter = 500
	lines := make(chan string)
	done := make(chan struct{})
	defer close(done)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-done:
				return
			}
		}
	}()
	var acked []block.ID
	killed := false
	// A hang guard only: a loaded machine may take long to acknowledge.
	deadline := time.NewTimer(5 * time.Minute)
	defer deadline.Stop()
	for reading := true; reading; {
		select {
		case line, ok := <-lines:
			if !ok {
				reading = false
				break
			}
			if id, ok := strings.CutPrefix(line, ackPrefix); ok {
				parsed, err := block.ParseHexID(id)
				if err != nil {
					cmd.Process.Kill()
					t.Fatalf("child printed %q: %v", line, err)
				}
				acked = append(acked, parsed)
			}
			if !killed && len(acked) >= killAfter {
				// The child is in the middle of writing: kill it there.
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				killed = true
			}
		case <-deadline.C:
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child acknowledged only %d blocks in time", len(acked))
		}
	}
	// Lines printed before the kill still arrive: those Puts returned too.
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child ended on its own after %d acknowledgements: %v", len(acked), err)
	}

	s := openDir(t, dir, Config{})
	ctx := t.Context()
	for _, id := range acked {
		b, _, err := s.Get(ctx, id)
		if err != nil {
			t.Fatalf("acknowledged block %v lost in the crash: %v", id.Short(), err)
		}
		if block.Sum(b) != id {
			t.Fatalf("acknowledged block %v does not verify", id.Short())
		}
	}
	var blocks int
	var bytes int64
	if err := s.Range(ctx, func(m Meta) error { blocks++; bytes += int64(m.Size); return nil }); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Blocks != blocks || st.Bytes != bytes || blocks < len(acked) {
		t.Fatalf("after the crash: counters %+v, Range %d blocks %d bytes, %d acknowledged", st, blocks, bytes, len(acked))
	}
	t.Logf("%d acknowledged blocks survived; %d held in all", len(acked), blocks)
}
