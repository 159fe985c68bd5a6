package bridge

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gomail "github.com/emersion/go-message/mail"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
	"github.com/flowmail/flowmail/testnet"
)

// offline knows pubkey blocks but cannot store anything: a network that
// went away after the recipient was looked up.
type offline struct{ stallNet }

func (offline) Put(context.Context, []byte, time.Duration) error {
	return errors.New("no route to any node")
}

// TestAMailThatCannotGoBouncesIntoInbox: the first failure files a delay
// notice, the last a bounce that says why and carries the original; the
// outbox is then empty.
func TestAMailThatCannotGoBouncesIntoInbox(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	alice, err := testnet.NewUser(filepath.Join(t.TempDir(), "alice"), 4)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := identity.Generate(4, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keys := t.TempDir()
	os.WriteFile(filepath.Join(keys, bob.ID().String()), bob.Public().Block, 0o600)
	ev := newEvents()
	cfg := bridgeConfig(alice, offline{stallNet{keys}}, ev)
	cfg.MaxAttempts = 2
	cfg.RetryAfter = time.Nanosecond // the retry is due at once
	a, pw := startBridge(t, cfg)
	msg, att := composeWithAttachment(t, alice.ID(), []block.ID{bob.ID()}, "cannot go", 3000)
	if err := smtpSend(t, a, pw, []string{mail.HeaderAddress(bob.ID())}, msg); err != nil {
		t.Fatal(err)
	}
	if e := waitSent(t, ctx, ev); e.err == nil || e.bounced {
		t.Fatalf("first attempt: %+v", e)
	}
	if e := waitSent(t, ctx, ev); e.err == nil || !e.bounced {
		t.Fatalf("second attempt: %+v", e)
	}
	if ids, _ := a.queue.List(); len(ids) != 0 {
		t.Fatalf("outbox after the bounce: %v", ids)
	}
	in, _ := a.store.Folder(mailbox.Inbox)
	ms := in.Messages()
	if len(ms) != 2 {
		t.Fatalf("INBOX holds %d notices, want a delay notice and a bounce", len(ms))
	}
	var subjects []string
	for _, m := range ms {
		raw, _, err := readMessage(in, m.UID)
		if err != nil {
			t.Fatal(err)
		}
		subjects = append(subjects, mail.Subject(raw))
		r, err := gomail.CreateReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		found, says := false, false
		for {
			p, err := r.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(p.Body)
			if _, ok := p.Header.(*gomail.AttachmentHeader); ok {
				found = bytes.Equal(attachmentOf(t, body), att)
			} else {
				says = bytes.Contains(body, []byte("no route to any node"))
			}
		}
		if !says {
			t.Fatalf("notice %q does not say why", mail.Subject(raw))
		}
		if !found {
			t.Fatalf("notice %q does not carry the original", mail.Subject(raw))
		}
	}
	if !strings.HasPrefix(subjects[0], "Delayed mail") || !strings.HasPrefix(subjects[1], "Undelivered mail: cannot go") {
		t.Fatalf("notices: %q", subjects)
	}
}
