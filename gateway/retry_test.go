package gateway

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/internal/clock"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/naming"
	"github.com/flowmail/flowmail/testnet"
)

// TestDeferredRelaySurvivesARestart: the remote MTA (a go-smtp server
// as smarthost) takes one of a mail's two recipients and defers the
// other (451); the retry is written to the spool; a new gateway started
// on the same spool does not try before it is due, and once the injected
// clock passes that time delivers to the deferred recipient only. A
// damaged retry file stops the start with ErrRetryState, naming the
// file.
func TestDeferredRelaySurvivesARestart(t *testing.T) {
	t.Parallel()
	k := startSink(t)
	k.deferLater.Store(true)
	clk := &clock.Offset{}
	var cfg Config
	s := newScene(t, false, func(c *Config) {
		c.Smarthost = k.ln.Addr().String()
		c.Clock = clk
		cfg = *c
	})
	me := mail.HeaderAddress(s.alice.ID())
	msg := naming.CarriedField(s.aliceCrt.Bytes()) + string(crlf("From: Alice <"+me+">\nTo: now@legacy.test, later@legacy.test\n"+
		mail.RelayHeader+": now@legacy.test, later@legacy.test\nSubject: two of them\nDate: Wed, 02 Dec 2026 05:00:00 +0000\n\nhello both\n"))
	built, err := testnet.SendMail(s.ctx, s.client, s.alice.Identity, []block.ID{s.gwUser.ID()}, []byte(msg), nil)
	if err != nil {
		t.Fatal(err)
	}
	built.Release()

	reps := s.relayPass(t)
	if len(reps) != 1 || !slices.Equal(reps[0].Delivered, []string{"now@legacy.test"}) || !slices.Equal(reps[0].Deferred, []string{"later@legacy.test"}) || len(reps[0].Bounced) != 0 {
		t.Fatalf("first attempt: %+v; want now@ delivered, later@ deferred", reps)
	}
	k.mustGet(t, s, "hello both")
	queue := readRetries(t, cfg.Spool)
	if len(queue) != 1 {
		t.Fatalf("the retry file holds %d mails, want 1", len(queue))
	}
	for _, r := range queue {
		if r.attempts != 1 || r.done != 1 || !r.next.After(clk.Now()) {
			t.Fatalf("retry entry %+v: want 1 attempt, recipient 0 done, due later", r)
		}
	}

	// A restart: nothing of the first gateway survives but its spool.
	s.gw.Close()
	cfg.Listener = nil
	if s.gw, err = Start(s.ctx, cfg); err != nil {
		t.Fatal(err)
	}
	s.waitPass(t) // its first pass: the mail is not due
	if len(s.relayed) != 0 || len(k.got) != 0 {
		t.Fatalf("the restarted gateway tried a mail before it was due (%d reports, %d delivered)", len(s.relayed), len(k.got))
	}
	k.deferLater.Store(false)
	clk.Advance(cfg.RetryAfter + time.Minute)
	reps = s.relayPass(t)
	if len(reps) != 1 || !slices.Equal(reps[0].Delivered, []string{"later@legacy.test"}) || len(reps[0].Deferred) != 0 || len(reps[0].Bounced) != 0 {
		t.Fatalf("after the restart: %+v; want later@ delivered, and only later@", reps)
	}
	k.mustGet(t, s, "hello both")
	if q := readRetries(t, cfg.Spool); len(q) != 0 {
		t.Fatalf("the retry file still holds %d mails", len(q))
	}
	if left, _ := os.ReadDir(filepath.Join(cfg.Spool, "outbound", "new")); len(left) != 0 {
		t.Fatalf("%d mails left in the spool", len(left))
	}

	// A damaged file: the gateway says which and does not start.
	s.gw.Close()
	path := filepath.Join(cfg.Spool, RetryFile)
	if err := os.WriteFile(path, []byte(retryMagic+"\nname 9 0 0000000000000000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if g, err := Start(s.ctx, cfg); !errors.Is(err, ErrRetryState) || !strings.Contains(err.Error(), path) {
		if g != nil {
			g.Close()
		}
		t.Fatalf("start on a damaged retry file: %v", err)
	}
}

func readRetries(t *testing.T, spool string) map[string]*retry {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(spool, RetryFile))
	if err != nil {
		t.Fatal(err)
	}
	q, err := decodeRetries(b)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// mustGet waits for the sink to be handed a message holding text.
func (k *sink) mustGet(t *testing.T, s *scene, text string) {
	t.Helper()
	select {
	case got := <-k.got:
		if !bytes.Contains(got, []byte(text)) {
			t.Fatalf("the MTA got another mail:\n%s", got)
		}
	case <-s.ctx.Done():
		t.Fatal("the MTA got nothing before the hang guard")
	}
}

// TestRetryStateRoundTrip: the file reads back as written, in canonical
// order, and each kind of damage is ErrRetryState.
func TestRetryStateRoundTrip(t *testing.T) {
	q := map[string]*retry{
		"1796188000.M1P2.host": {attempts: 3, next: time.Unix(1796191600, 0), done: 5},
		"1796188001.M2P2.host": {attempts: 1, next: time.Unix(0, 0), done: 0},
	}
	b := encodeRetries(q)
	want := retryMagic + "\n1796188000.M1P2.host 3 1796191600 0000000000000005\n1796188001.M2P2.host 1 0 0000000000000000\n"
	if string(b) != want {
		t.Fatalf("encoded %q, want %q", b, want)
	}
	back, err := decodeRetries(b)
	if err != nil || !bytes.Equal(encodeRetries(back), b) {
		t.Fatalf("decoded %v, %v", back, err)
	}
	for _, bad := range []string{
		"",
		"flowmail-gateway-retries 2\n",
		retryMagic,
		retryMagic + "\na 1 0 0000000000000000", // no final newline
		retryMagic + "\nb 1 0 0000000000000000\na 1 0 0000000000000000\n",                   // out of order
		retryMagic + "\na 1 0 0000000000000000\na 1 0 0000000000000000\n",                   // twice
		retryMagic + "\na 0 0 0000000000000000\n",                                           // no attempt
		retryMagic + "\na 8 0 0000000000000000\n",                                           // past MaxRelayAttempts-1
		retryMagic + "\na 01 0 0000000000000000\n",                                          // leading zero
		retryMagic + "\na 1 -1 0000000000000000\n",                                          // sign
		retryMagic + "\na 1 0 000000000000000A\n",                                           // upper case
		retryMagic + "\na 1 0 00000000000000\n",                                             // short
		retryMagic + "\n.hidden 1 0 0000000000000000\n",                                     // not a spool name
		retryMagic + "\na/b 1 0 0000000000000000\n",                                         // a path
		retryMagic + "\na 1 0 0000000000000000 extra\n",                                     // a fifth field
		retryMagic + "\na 1 999999999999999 0000000000000000\n",                             // past year 9999
		retryMagic + "\n" + strings.Repeat("x", maxSpoolName+1) + " 1 0 0000000000000000\n", // long name
	} {
		if _, err := decodeRetries([]byte(bad)); !errors.Is(err, ErrRetryState) {
			t.Errorf("%q: %v, want ErrRetryState", bad, err)
		}
	}
}
