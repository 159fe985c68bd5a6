package bridge

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/clock"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/testnet"
)

// childEnv names the directory of a bridge the test binary runs as a
// child process, to be killed.
const childEnv = "FLOWMAIL_BRIDGE_TEST_CHILD"

// stallNet answers key lookups from a directory of pubkey blocks and
// never finishes storing a block: a bridge on it accepts mail and is
// killed in the middle of sending it.
type stallNet struct{ dir string }

func (s stallNet) Put(ctx context.Context, _ []byte, _ time.Duration) error {
	<-ctx.Done()
	return ctx.Err()
}

func (s stallNet) Get(_ context.Context, id block.ID) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, id.String()))
	if err != nil {
		return nil, fmt.Errorf("stall net: %w", err)
	}
	return b, nil
}

func (s stallNet) List(context.Context, block.ID, int, time.Time) ([]block.ID, error) {
	return nil, nil
}
func (s stallNet) Delete(context.Context, block.ID, [32]byte) error { return nil }

// runChild runs a bridge for the user whose home is $FLOWMAIL_CHILD_HOME
// on a stallNet in dir, prints its SMTP address, and waits to be killed.
func runChild(dir string) int {
	home := os.Getenv("FLOWMAIL_CHILD_HOME")
	id, err := identity.ReadKeyFile(filepath.Join(home, "identity.key"), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	b, err := Start(context.Background(), Config{
		Identity: id, Network: stallNet{dir}, Maildir: filepath.Join(home, "Maildir"),
		StateDir: filepath.Join(home, "state"), Dir: filepath.Join(home, "bridge"),
		IMAPAddr: "127.0.0.1:0", SMTPAddr: "127.0.0.1:0", FetchInterval: time.Hour,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(b.SMTPAddr())
	select {} // until killed
}

// TestAcceptedMailSurvivesAKillAndGoesOutOnce: a bridge accepts a mail
// (250) and is killed with SIGKILL while storing it; the next bridge on
// the same home sends it; the recipient gets it once. Then a send that
// fails after its blocks were stored (as a crash just before the outbox
// notes it) is sent again: the same mail, delivered once.
func TestAcceptedMailSurvivesAKillAndGoesOutOnce(t *testing.T) {
	s := newScene(t, "alice", "bob")
	alice, bob := s.users[0], s.users[1]
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, bob.ID().String()), bob.Public().Block, 0o600); err != nil {
		t.Fatal(err)
	}
	bridgeDir := filepath.Join(alice.Home, "bridge")
	pw, err := ShowPassword(bridgeDir, alice.Identity, false, cheapArgon2)
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childEnv+"="+dir, "FLOWMAIL_CHILD_HOME="+alice.Home)
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			child.Process.Kill()
			child.Wait()
		}
	})
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("child bridge: %v", err)
	}
	msg, _ := composeWithAttachment(t, alice.ID(), []block.ID{bob.ID()}, "survives a kill", 2000)
	if err := smtpSendTo(t, strings.TrimSpace(addr), alice.Identity, pw, []string{mail.HeaderAddress(bob.ID())}, msg); err != nil {
		t.Fatalf("the child did not accept the mail: %v", err)
	}
	child.Process.Kill() // SIGKILL: no chance to clean up
	child.Wait()
	killed = true

	ev := newEvents()
	cfg := bridgeConfig(alice, s.client(t), ev)
	a, _ := startBridge(t, cfg)
	if e := waitSent(t, s.ctx, ev); e.err != nil {
		t.Fatalf("sending what the killed bridge accepted: %v", e.err)
	}
	rep, err := testnet.FetchMail(s.ctx, s.client(t), bob, delivery.FetchOptions{})
	if err != nil || len(rep.Delivered) != 1 || mail.Subject(mustRead(t, rep.Delivered[0].Path)) != "survives a kill" {
		t.Fatalf("Bob's fetch: %v %+v", err, rep)
	}
	a.Close()

	// Stored, then "crashed" before the outbox noted it: sent again.
	clk := &clock.Offset{}
	cut := &cutAfterIndex{Network: s.client(t)}
	cfg.Network, cfg.Clock = cut, clk
	a, pw = startBridge(t, cfg)
	if err := smtpSend(t, a, pw, []string{mail.HeaderAddress(bob.ID())}, msg); err != nil {
		t.Fatal(err)
	}
	if e := waitSent(t, s.ctx, ev); e.err == nil || e.bounced {
		t.Fatalf("first attempt: %+v, want a failure to retry", e)
	}
	clk.Advance(2 * time.Hour)
	a.kickSender()
	if e := waitSent(t, s.ctx, ev); e.err != nil {
		t.Fatalf("retry: %v", e.err)
	}
	if cut.indexPuts.Load() != 2 {
		t.Fatalf("%d index block stores, want 2 (sent twice)", cut.indexPuts.Load())
	}
	rep, err = testnet.FetchMail(s.ctx, s.client(t), bob, delivery.FetchOptions{})
	if err != nil || len(rep.Delivered) != 1 {
		t.Fatalf("Bob's fetch of the mail sent twice: %v %+v", err, rep)
	}
	for _, r := range rep.Rejected {
		if !errors.Is(r, delivery.ErrDuplicate) {
			t.Fatalf("rejected for another reason: %v", r)
		}
	}
	// The same mail, sent again, is the same message: Bob's fetch after
	// the first one would have delivered it again otherwise.
	if rep.Delivered[0].MessageID == ([16]byte{}) {
		t.Fatal("no message ID")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// cutAfterIndex stores blocks, but fails the first index block's store
// after it is done, as a bridge killed right after storing would.
type cutAfterIndex struct {
	delivery.Network
	indexPuts atomic.Int32
}

func (c *cutAfterIndex) Put(ctx context.Context, blk []byte, life time.Duration) error {
	if err := c.Network.Put(ctx, blk, life); err != nil {
		return err
	}
	if h, _, err := block.ParseHeader(blk); err == nil && h.Type == block.TypeIndex {
		if c.indexPuts.Add(1) == 1 {
			return errors.New("cut after storing the index block")
		}
	}
	return nil
}
