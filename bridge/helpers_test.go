package bridge

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"go.uber.org/goleak"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/node"
	"github.com/flowmail/flowmail/testnet"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(runChild(dir))
	}
	goleak.VerifyTestMain(m)
}

// hangGuard bounds whole tests: a hang, never a speed requirement.
const hangGuard = 8 * time.Minute

// cheapArgon2 keeps logins fast under -race; the cost is a parameter of
// the login file, checked the same way.
var cheapArgon2 = Argon2Params{MemoryKiB: 64, Passes: 1, Lanes: 1}

// netScene is a loopback testnet of real nodes and users whose keys are
// published.
type netScene struct {
	ctx   context.Context
	net   *testnet.Net
	users []*testnet.User
}

func newScene(t *testing.T, names ...string) *netScene {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	t.Cleanup(cancel)
	tune := func(c *node.Config) {
		c.K = 5
		c.DialTimeout = 20 * time.Second
		c.RequestTimeout = 2 * time.Minute
	}
	n, err := testnet.Start(ctx, testnet.Config{
		Nodes: 8, Dir: t.TempDir(),
		Tune:       func(_ int, c *node.Config) { tune(c) },
		TuneClient: tune,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	s := &netScene{ctx: ctx, net: n}
	c := s.client(t)
	for _, name := range names {
		u, err := testnet.NewUser(filepath.Join(t.TempDir(), name), 4)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Put(ctx, u.Public().Block, block.MaxLifetime); err != nil {
			t.Fatal(err)
		}
		s.users = append(s.users, u)
	}
	return s
}

func (s *netScene) client(t *testing.T) *node.Node {
	t.Helper()
	c, err := s.net.Client(s.ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// events collects what a bridge reports, for tests to wait on.
type events struct {
	fetched chan *delivery.FetchReport
	sent    chan sendEvent
}

type sendEvent struct {
	id      string
	err     error
	bounced bool
}

func newEvents() *events {
	return &events{fetched: make(chan *delivery.FetchReport, 64), sent: make(chan sendEvent, 64)}
}

func bridgeConfig(u *testnet.User, n delivery.Network, ev *events) Config {
	return Config{
		Identity: u.Identity, Network: n,
		Maildir: u.Maildir(), StateDir: u.StateDir(), Dir: filepath.Join(u.Home, "bridge"),
		IMAPAddr: "127.0.0.1:0", SMTPAddr: "127.0.0.1:0",
		FetchInterval: time.Hour, // fetches come from FetchNow
		RetryAfter:    time.Hour, // retries come from kicks
		// Idle clients learn of new mail from the delivery itself, never
		// from a rescan in a test.
		RescanInterval: time.Hour,
		OnFetch: func(r *delivery.FetchReport, err error) {
			if r != nil {
				ev.fetched <- r
			}
		},
		OnSend: func(id string, err error, bounced bool) { ev.sent <- sendEvent{id, err, bounced} },
	}
}

// startBridge starts a bridge with a password set, stopped at cleanup.
func startBridge(t *testing.T, cfg Config) (*Bridge, string) {
	t.Helper()
	pw, err := ShowPassword(cfg.Dir, cfg.Identity, false, cheapArgon2)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, pw
}

// waitStartFetch waits for the fetch every bridge makes when it starts.
func waitStartFetch(t *testing.T, ctx context.Context, ev *events) {
	t.Helper()
	select {
	case <-ev.fetched:
	case <-ctx.Done():
		t.Fatal("no fetch at start before the hang guard")
	}
}

// waitFetch kicks a fetch and waits for its report (after
// waitStartFetch: the fetch interval is an hour, so no other report
// comes between).
func waitFetch(t *testing.T, ctx context.Context, b *Bridge, ev *events) *delivery.FetchReport {
	t.Helper()
	b.FetchNow()
	select {
	case r := <-ev.fetched:
		return r
	case <-ctx.Done():
		t.Fatal("no fetch report before the hang guard")
	}
	return nil
}

func waitSent(t *testing.T, ctx context.Context, ev *events) sendEvent {
	t.Helper()
	select {
	case e := <-ev.sent:
		return e
	case <-ctx.Done():
		t.Fatal("nothing sent before the hang guard")
	}
	return sendEvent{}
}

func imapLogin(t testing.TB, b *Bridge, pw string, opt *imapclient.Options) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(b.IMAPAddr(), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(UserName(b.me), pw).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

func smtpSend(t testing.TB, b *Bridge, pw string, rcpts []string, msg []byte) error {
	t.Helper()
	return smtpSendTo(t, b.SMTPAddr(), b.me, pw, rcpts, msg)
}

func smtpSendTo(t testing.TB, addr string, me *identity.Identity, pw string, rcpts []string, msg []byte) error {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", UserName(me), pw)); err != nil {
		return err
	}
	if err := c.SendMail(mail.HeaderAddress(me.ID()), rcpts, bytes.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}

// composeWithAttachment makes a mail from one user to others with a
// random attachment of n bytes.
func composeWithAttachment(t *testing.T, from block.ID, to []block.ID, subject string, n int) ([]byte, []byte) {
	t.Helper()
	att := make([]byte, n)
	crand.Read(att)
	var boxes []mail.Mailbox
	for _, id := range to {
		boxes = append(boxes, mail.Mailbox{Address: id})
	}
	msg, err := mail.Compose(&mail.Message{
		From: mail.Mailbox{Name: "Sender", Address: from}, To: boxes, Subject: subject,
		Text: "See the attachment.\n", Date: time.Now(),
		Attachments: []mail.Attachment{{Name: "data.bin", Data: att}},
	}, crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return msg, att
}

// idleWatcher counts EXISTS sent to an idling client.
type idleWatcher struct {
	mu     sync.Mutex
	exists uint32
	ch     chan uint32
}

func newIdleWatcher() (*idleWatcher, *imapclient.Options) {
	w := &idleWatcher{ch: make(chan uint32, 64)}
	return w, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				w.ch <- *d.NumMessages
			}
		},
	}}
}

func (w *idleWatcher) waitExists(t *testing.T, ctx context.Context, n uint32) {
	t.Helper()
	for {
		select {
		case got := <-w.ch:
			if got >= n {
				return
			}
		case <-ctx.Done():
			t.Fatalf("no EXISTS %d before the hang guard", n)
		}
	}
}

func fmtIDs(ids ...block.ID) string { return fmt.Sprint(ids) }
