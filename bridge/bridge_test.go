package bridge

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	gomail "github.com/emersion/go-message/mail"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
	"github.com/flowmail/flowmail/testnet"
)

// attachmentOf parses a message and returns its first attachment.
func attachmentOf(t *testing.T, msg []byte) []byte {
	t.Helper()
	r, err := gomail.CreateReader(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			t.Fatal("no attachment")
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := p.Header.(*gomail.AttachmentHeader); ok {
			b, err := io.ReadAll(p.Body)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
}

type inboxState struct {
	validity uint32
	uids     []imap.UID
	flags    [][]imap.Flag
	subjects []string
}

func readInbox(t *testing.T, c *imapclient.Client, folder string) inboxState {
	t.Helper()
	sel, err := c.Select(folder, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	st := inboxState{validity: sel.UIDValidity}
	if sel.NumMessages == 0 {
		return st
	}
	msgs, err := c.Fetch(seqAll(sel.NumMessages), &imap.FetchOptions{UID: true, Flags: true, Envelope: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		st.uids = append(st.uids, m.UID)
		st.flags = append(st.flags, m.Flags)
		st.subjects = append(st.subjects, m.Envelope.Subject)
	}
	return st
}

func fetchBody(t *testing.T, c *imapclient.Client, uid imap.UID, peek bool) []byte {
	t.Helper()
	section := &imap.FetchItemBodySection{Peek: peek}
	msgs, err := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("fetch BODY[] of %d: %v (%d messages)", uid, err, len(msgs))
	}
	return msgs[0].FindBodySection(section)
}

// TestSubmitOverSMTPReceiveOverIMAPWithIdle is the scenario with
// Go clients over loopback sockets against real nodes: Alice submits
// over SMTP, Bob idles on INBOX and is told of the mail when his bridge
// fetches it, the attachment is byte-identical, Alice's Sent holds the
// copy; Bob's flags, UIDVALIDITY and UIDs are the same after a restart
// and after the UID file is deleted and rebuilt.
func TestSubmitOverSMTPReceiveOverIMAPWithIdle(t *testing.T) {
	s := newScene(t, "alice", "bob")
	alice, bob := s.users[0], s.users[1]
	aev, bev := newEvents(), newEvents()
	a, apw := startBridge(t, bridgeConfig(alice, s.client(t), aev))
	bcfg := bridgeConfig(bob, s.client(t), bev)
	b, bpw := startBridge(t, bcfg)
	waitStartFetch(t, s.ctx, bev)

	watch, opt := newIdleWatcher()
	bc := imapLogin(t, b, bpw, opt)
	if _, err := bc.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := bc.Idle()
	if err != nil {
		t.Fatal(err)
	}

	msg, att := composeWithAttachment(t, alice.ID(), []block.ID{bob.ID()}, "Quarterly report", 150<<10)
	if err := smtpSend(t, a, apw, []string{mail.HeaderAddress(bob.ID())}, msg); err != nil {
		t.Fatalf("submitting: %v", err)
	}
	if e := waitSent(t, s.ctx, aev); e.err != nil {
		t.Fatalf("sending: %v", e.err)
	}
	waitFetch(t, s.ctx, b, bev)
	watch.waitExists(t, s.ctx, 1) // told while idling
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}

	in := readInbox(t, bc, "INBOX")
	if len(in.uids) != 1 || in.subjects[0] != "Quarterly report" {
		t.Fatalf("Bob's INBOX: %+v", in)
	}
	body := fetchBody(t, bc, in.uids[0], false) // marks it read
	if !bytes.Equal(attachmentOf(t, body), att) {
		t.Fatal("the attachment Bob reads differs from the one Alice sent")
	}
	// The Maildir file holds LF line ends; IMAP serves CRLF.
	files, _ := filepath.Glob(filepath.Join(bob.Maildir(), "cur", "*"))
	if len(files) != 1 {
		t.Fatalf("Bob's cur/: %v", files)
	}
	disk, _ := os.ReadFile(files[0])
	if bytes.Contains(disk, []byte("\r")) || !bytes.Equal(bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n")), disk) {
		t.Fatal("the Maildir file is not the served message with LF line ends")
	}

	ac := imapLogin(t, a, apw, nil)
	sent := readInbox(t, ac, "Sent")
	if len(sent.uids) != 1 || sent.subjects[0] != "Quarterly report" {
		t.Fatalf("Alice's Sent: %+v", sent)
	}
	if !bytes.Equal(attachmentOf(t, fetchBody(t, ac, sent.uids[0], true)), att) {
		t.Fatal("the Sent copy's attachment differs")
	}

	if err := bc.Store(imap.UIDSetNum(in.uids[0]), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged, imap.FlagAnswered}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	before := readInbox(t, bc, "INBOX")
	bc.Logout().Wait()

	for _, lose := range []string{"", mailbox.UIDFile} {
		b.Close()
		if lose != "" {
			if err := os.Remove(filepath.Join(bob.Maildir(), lose)); err != nil {
				t.Fatal(err)
			}
		}
		b, bpw = startBridge(t, bcfg)
		after := readInbox(t, imapLogin(t, b, bpw, nil), "INBOX")
		if after.validity != before.validity || len(after.uids) != 1 || after.uids[0] != before.uids[0] ||
			!hasFlags(after.flags[0], imap.FlagFlagged, imap.FlagAnswered, imap.FlagSeen) {
			t.Fatalf("after restart (lost %q): %+v, before %+v", lose, after, before)
		}
	}
}

func hasFlags(have []imap.Flag, want ...imap.Flag) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			found = found || strings.EqualFold(string(h), string(w))
		}
		if !found {
			return false
		}
	}
	return true
}

// TestBccRecipientsGetSeparateMails: a recipient the headers do not name
// gets a mail of its own, and the others' mail does not name it.
func TestBccRecipientsGetSeparateMails(t *testing.T) {
	s := newScene(t, "alice", "bob", "carol")
	alice, bob, carol := s.users[0], s.users[1], s.users[2]
	aev := newEvents()
	a, apw := startBridge(t, bridgeConfig(alice, s.client(t), aev))
	msg, _ := composeWithAttachment(t, alice.ID(), []block.ID{bob.ID()}, "with a blind copy", 1000)
	if err := smtpSend(t, a, apw, []string{mail.HeaderAddress(bob.ID()), mail.HeaderAddress(carol.ID())}, msg); err != nil {
		t.Fatal(err)
	}
	if e := waitSent(t, s.ctx, aev); e.err != nil {
		t.Fatal(e.err)
	}
	for _, u := range []*testnet.User{bob, carol} {
		rep, err := testnet.FetchMail(s.ctx, s.client(t), u, delivery.FetchOptions{})
		if err != nil || len(rep.Delivered) != 1 {
			t.Fatalf("%s: %v, %+v", u.Address(), err, rep)
		}
		if got := rep.Delivered[0].Recipients; len(got) != 1 || got[0] != u.ID() {
			t.Fatalf("%s's mail names recipients %v", u.Address(), fmtIDs(got...))
		}
	}
}

func seqAll(n uint32) imap.SeqSet {
	var s imap.SeqSet
	s.AddRange(1, n)
	return s
}
