package bridge

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/clock"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/node"
	"github.com/flowmail/flowmail/record"
)

func smtpCode(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// TestBadInputGetsClearErrorsAndTheBridgeKeepsServing: an oversized
// message, a malformed one, recipients that do not resolve or have no
// key, wrong passwords up to the rate limit (on the injected clock), and
// an IMAP client gone in the middle of an APPEND. Each gets an error that
// says why; nothing is half-stored; the next good request works.
func TestBadInputGetsClearErrorsAndTheBridgeKeepsServing(t *testing.T) {
	s := newScene(t, "alice", "bob")
	alice, bob := s.users[0], s.users[1]
	ev := newEvents()
	clk := &clock.Offset{}
	cfg := bridgeConfig(alice, s.client(t), ev)
	cfg.Clock = clk
	cfg.MaxMessageSize = 64 << 10
	cfg.Resolve = func(_ context.Context, name string) (block.ID, error) {
		switch {
		case name == "bob":
			return bob.ID(), nil
		case strings.HasSuffix(name, "@legacy.example"):
			return block.ID{}, &LegacyError{Email: name, Err: errors.New("no flowmail record")}
		}
		return block.ID{}, fmt.Errorf("no contact named %q", name)
	}
	// Legacy addresses: the command's hook says what the user must set.
	cfg.Gateway = func(context.Context) (Gateway, error) {
		return Gateway{}, fmt.Errorf("%w: start the bridge with your certified name", ErrNoGateway)
	}
	stranger, err := identity.Generate(4, time.Now()) // never published
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := identity.Generate(4, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// Key logs as the DHT would answer them: bob at his inception, one
	// address whose owner revoked it, nothing for anyone else. (The DHT's
	// own answers are tested in kademlia and by flowmail key revoke.)
	cfg.KeyLogs = keyLogsFunc(func(_ context.Context, addr block.ID) (record.KeyState, error) {
		switch addr {
		case bob.ID():
			return record.InitialState(bob.Public()), nil
		case revoked.ID():
			st := record.InitialState(revoked.Public())
			st.Revoked = true
			return st, nil
		}
		return record.KeyState{}, fmt.Errorf("%w: no key log for %s", node.ErrNotFound, addr.Short())
	})
	a, pw := startBridge(t, cfg)

	good, _ := composeWithAttachment(t, alice.ID(), []block.ID{bob.ID()}, "fine", 1000)
	big, _ := composeWithAttachment(t, alice.ID(), []block.ID{bob.ID()}, "too big", 80<<10)
	forged, _ := composeWithAttachment(t, bob.ID(), []block.ID{bob.ID()}, "From someone else", 100)
	for _, tc := range []struct {
		name  string
		rcpts []string
		msg   []byte
		code  int
		says  string
	}{
		{"over the size limit", []string{mail.HeaderAddress(bob.ID())}, big, 552, ""},
		{"no header at all", []string{mail.HeaderAddress(bob.ID())}, []byte("just text\r\nno header\r\n"), 550, "header does not parse"},
		{"From another address", []string{mail.HeaderAddress(bob.ID())}, forged, 550, mail.HeaderAddress(alice.ID())},
		{"unknown domain", []string{"someone@example.com"}, good, 550, "someone@example.com"},
		{"unknown contact", []string{"carol@flowmail.invalid"}, good, 550, "no contact named"},
		{"address with a typo", []string{identity.FormatAddress(bob.ID())[:20] + "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq@flowmail.invalid"}, good, 550, "unknown recipient"},
		{"no published key", []string{mail.HeaderAddress(stranger.ID())}, good, 550, "no published key"},
		{"revoked address", []string{mail.HeaderAddress(revoked.ID())}, good, 550, "revoked"},
		{"legacy address without a gateway", []string{"carol@legacy.example"}, good, 550, "carol@legacy.example is a legacy (SMTP) address, sent through your domain's gateway: bridge: no gateway for legacy (SMTP) addresses: start the bridge with your certified name"},
	} {
		err := smtpSend(t, a, pw, tc.rcpts, tc.msg)
		if smtpCode(err) != tc.code || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want code %d saying %q", tc.name, err, tc.code, tc.says)
		}
	}
	if ids, _ := a.queue.List(); len(ids) != 0 {
		t.Fatalf("refused mail reached the outbox: %v", ids)
	}
	// A contact name at flowmail.invalid resolves through Config.Resolve.
	if err := smtpSend(t, a, pw, []string{"bob@flowmail.invalid"}, good); err != nil {
		t.Fatalf("good mail after the bad ones: %v", err)
	}
	if e := waitSent(t, s.ctx, ev); e.err != nil {
		t.Fatal(e.err)
	}

	// Wrong passwords: refused, then rate-limited even with the right
	// one, until the window has passed on the bridge's clock.
	for i := range MaxFailuresPerSource {
		if err := smtpAuth(t, a, "wrong"); smtpCode(err) != 535 {
			t.Fatalf("wrong password %d: %v", i, err)
		}
	}
	if err := smtpAuth(t, a, pw); smtpCode(err) != 454 || !strings.Contains(err.Error(), "too many wrong passwords") {
		t.Fatalf("right password while limited: %v", err)
	}
	c, err := imapclient.DialInsecure(a.IMAPAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(UserName(alice.Identity), pw).Wait(); err == nil || !strings.Contains(err.Error(), "too many wrong passwords") {
		t.Fatalf("IMAP login while limited: %v", err)
	}
	c.Close()
	clk.Advance(FailureWindow)
	if err := smtpAuth(t, a, pw); err != nil {
		t.Fatalf("right password after the window: %v", err)
	}

	// An APPEND cut off in the middle leaves nothing behind.
	in, _ := a.store.Folder("INBOX")
	next := in.UIDNext()
	conn, err := net.Dial("tcp", a.IMAPAddr())
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	r.ReadString('\n') // greeting
	fmt.Fprintf(conn, "a LOGIN %s %s\r\n", UserName(alice.Identity), pw)
	for line, _ := r.ReadString('\n'); !strings.HasPrefix(line, "a "); line, _ = r.ReadString('\n') {
	}
	fmt.Fprintf(conn, "b APPEND INBOX {5000}\r\n")
	if line, _ := r.ReadString('\n'); !strings.HasPrefix(line, "+") {
		t.Fatalf("no continuation for APPEND: %q", line)
	}
	conn.Write(bytes.Repeat([]byte("x"), 1200))
	conn.Close()
	a.sessions.wait() // every connection so far has ended
	if in.UIDNext() != next || len(in.Messages()) != 0 {
		t.Fatalf("a cut-off APPEND left a message (UIDNEXT %d -> %d)", next, in.UIDNext())
	}
	if tmp, _ := os.ReadDir(filepath.Join(alice.Maildir(), "tmp")); len(tmp) != 0 {
		t.Fatalf("tmp/ holds %d files after a cut-off APPEND", len(tmp))
	}
	ic := imapLogin(t, a, pw, nil)
	cmd := ic.Append("Drafts", int64(len(good)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagDraft}})
	cmd.Write(good)
	cmd.Close()
	data, err := cmd.Wait()
	if err != nil || data.UID != 1 {
		t.Fatalf("APPEND after the cut-off one: %+v %v", data, err)
	}
}

func smtpAuth(t *testing.T, b *Bridge, pw string) error {
	t.Helper()
	c, err := smtp.Dial(b.SMTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.Auth(sasl.NewPlainClient("", UserName(b.me), pw))
}

// keyLogsFunc is a delivery.KeyLogs from a function.
type keyLogsFunc func(context.Context, block.ID) (record.KeyState, error)

func (f keyLogsFunc) KeyState(ctx context.Context, addr block.ID) (record.KeyState, error) {
	return f(ctx, addr)
}
