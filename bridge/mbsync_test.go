package bridge

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
	"github.com/flowmail/flowmail/testnet"
)

// TestMbsyncSyncsInboxOverStartTLS: a real mail program (mbsync, Debian's
// isync; .ci/run installs it) syncs the bridge's INBOX into a local
// Maildir over STARTTLS with the bridge's certificate, then syncs again
// after a restart and after the UID file is lost: mbsync's own state
// checks UIDVALIDITY and UIDs, so any change fails the sync or
// duplicates the mail.
func TestMbsyncSyncsInboxOverStartTLS(t *testing.T) {
	mbsync, err := exec.LookPath("mbsync")
	if err != nil {
		t.Skip("mbsync is not installed (Debian package isync; .ci/run installs it with apt-get, which was unavailable or failed here)")
	}
	s := newScene(t, "alice", "bob")
	alice, bob := s.users[0], s.users[1]
	ev := newEvents()
	cfg := bridgeConfig(bob, s.client(t), ev)
	b, pw := startBridge(t, cfg)
	waitStartFetch(t, s.ctx, ev)
	msg, _ := composeWithAttachment(t, alice.ID(), []block.ID{bob.ID()}, "for mbsync", 30<<10)
	built, err := testnet.SendMail(s.ctx, s.client(t), alice.Identity, []block.ID{bob.ID()}, msg, nil)
	if err != nil {
		t.Fatal(err)
	}
	built.Release()
	if rep := waitFetch(t, s.ctx, b, ev); len(rep.Delivered) != 1 {
		t.Fatalf("Bob's bridge fetched %+v", rep)
	}

	local := t.TempDir()
	rc := filepath.Join(t.TempDir(), "mbsyncrc")
	sync := func() {
		t.Helper()
		conf := mbsyncRC(bob, b, cfg.Dir, pw, local, "Channel inbox\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Near\nSyncState *\n")
		if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.CommandContext(s.ctx, mbsync, "-c", rc, "-a").CombinedOutput()
		if err != nil {
			t.Fatalf("mbsync: %v\n%s", err, out)
		}
	}
	sync()
	files := func() [][]byte {
		var out [][]byte
		for _, sub := range []string{"new", "cur"} {
			names, _ := filepath.Glob(filepath.Join(local, "INBOX", sub, "*"))
			for _, n := range names {
				out = append(out, mustRead(t, n))
			}
		}
		return out
	}
	got := files()
	// mbsync marks what it copies with an X-TUID header of its own.
	if len(got) == 1 {
		got[0] = tuid.ReplaceAll(got[0], nil)
	}
	if len(got) != 1 || !bytes.Equal(got[0], bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n"))) {
		t.Fatalf("mbsync's INBOX holds %d mails (want 1, equal to the sent one with LF)", len(got))
	}
	validity := func() uint32 {
		in, err := b.store.Folder(mailbox.Inbox)
		if err != nil {
			t.Fatal(err)
		}
		return in.UIDValidity()
	}
	first := validity()
	for _, lose := range []string{"", mailbox.UIDFile} {
		b.Close()
		if lose != "" {
			os.Remove(filepath.Join(bob.Maildir(), lose))
		}
		b, pw = startBridge(t, cfg)
		sync()
		if n := len(files()); n != 1 || validity() != first {
			t.Fatalf("after a restart (lost %q) mbsync holds %d mails, UIDVALIDITY %d (was %d)", lose, n, validity(), first)
		}
	}
}

var tuid = regexp.MustCompile(`(?m)^X-TUID: [^\n]*\n`)

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

// TestMsmtpSendsAndMbsyncSyncsBothWays: real mail programs on both
// sides. msmtp (Debian's msmtp; .ci/run installs it) submits Alice's
// mail to her bridge over STARTTLS with AUTH PLAIN; it reaches Bob's
// bridge through the network; mbsync syncs every folder of Bob's into a
// local Maildir, and back: a draft written locally is uploaded into the
// bridge's Drafts, flags set locally land on the bridge's message, and a
// second sync changes nothing.
func TestMsmtpSendsAndMbsyncSyncsBothWays(t *testing.T) {
	mbsync, err := exec.LookPath("mbsync")
	if err != nil {
		t.Skip("mbsync is not installed (Debian package isync; .ci/run installs it with apt-get, which was unavailable or failed here)")
	}
	msmtp, err := exec.LookPath("msmtp")
	if err != nil {
		t.Skip("msmtp is not installed (Debian package msmtp; .ci/run installs it with apt-get, which was unavailable or failed here)")
	}
	s := newScene(t, "alice", "bob")
	alice, bob := s.users[0], s.users[1]
	evA, evB := newEvents(), newEvents()
	cfgA, cfgB := bridgeConfig(alice, s.client(t), evA), bridgeConfig(bob, s.client(t), evB)
	ba, pwA := startBridge(t, cfgA)
	bb, pwB := startBridge(t, cfgB)
	waitStartFetch(t, s.ctx, evA)
	waitStartFetch(t, s.ctx, evB)

	// msmtp reads the recipients from the header (-t), as mutt hands a
	// mail to it; the text has LF line ends, as a file on disk does.
	msmtprc := filepath.Join(t.TempDir(), "msmtprc")
	writeFile(t, msmtprc, fmt.Sprintf(`defaults
tls on
tls_starttls on
tls_trust_file %s
auth plain
account flowmail
host 127.0.0.1
port %s
from %s
user %s
password %s
account default : flowmail
`, filepath.Join(cfgA.Dir, CertFile), portOf(ba.SMTPAddr()), mail.HeaderAddress(alice.ID()), UserName(alice.Identity), pwA))
	text := "From: Alice <" + mail.HeaderAddress(alice.ID()) + ">\nTo: Bob <" + mail.HeaderAddress(bob.ID()) + ">\n" +
		"Subject: through msmtp\nDate: Mon, 02 Mar 2026 10:00:00 +0000\nMessage-ID: <msmtp-1@flowmail.invalid>\n\n" +
		"Sent by msmtp.\nA second line.\n"
	cmd := exec.CommandContext(s.ctx, msmtp, "-C", msmtprc, "-t")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("msmtp: %v\n%s", err, out)
	}
	if e := waitSent(t, s.ctx, evA); e.err != nil {
		t.Fatalf("Alice's bridge could not send msmtp's mail: %v", e.err)
	}
	bb.FetchNow()
	if rep := waitFetch(t, s.ctx, bb, evB); len(rep.Delivered) != 1 {
		t.Fatalf("Bob's bridge fetched %+v", rep)
	}
	if sent, err := ba.store.Folder("Sent"); err != nil || len(sent.Messages()) != 1 {
		t.Fatalf("Alice's Sent after msmtp: %v", err)
	}

	local := t.TempDir()
	rc := filepath.Join(t.TempDir(), "mbsyncrc")
	writeFile(t, rc, mbsyncRC(bob, bb, cfgB.Dir, pwB, local, "Channel all\nFar :remote:\nNear :local:\nPatterns *\nCreate Both\nExpunge Both\nSyncState *\n"))
	sync := func() {
		t.Helper()
		out, err := exec.CommandContext(s.ctx, mbsync, "-c", rc, "-a").CombinedOutput()
		if err != nil {
			t.Fatalf("mbsync: %v\n%s", err, out)
		}
	}
	sync()
	inbox, _ := filepath.Glob(filepath.Join(local, "INBOX", "*", "*"))
	if len(inbox) != 1 {
		t.Fatalf("mbsync's INBOX holds %d files, want 1", len(inbox))
	}
	got := tuid.ReplaceAll(mustRead(t, inbox[0]), nil)
	if !bytes.Contains(got, []byte("\n\nSent by msmtp.\nA second line.\n")) || !bytes.Contains(got, []byte("Subject: through msmtp\n")) {
		t.Fatalf("the mail msmtp sent reads, through both bridges and mbsync:\n%s", got)
	}
	for _, f := range []string{"Sent", "Drafts", "Trash", "Archive"} {
		if _, err := os.Stat(filepath.Join(local, f, "cur")); err != nil {
			t.Fatalf("mbsync made no local %s: %v", f, err)
		}
	}

	// Back the other way: flags set by renaming the local file (as mutt
	// does), and a draft written into the local Drafts.
	flagged := filepath.Join(filepath.Dir(filepath.Dir(inbox[0])), "cur", strings.SplitN(filepath.Base(inbox[0]), ":2,", 2)[0]+":2,FS")
	if err := os.Rename(inbox[0], flagged); err != nil {
		t.Fatal(err)
	}
	draft := "From: <" + mail.HeaderAddress(bob.ID()) + ">\nSubject: a draft from mbsync\nDate: Mon, 02 Mar 2026 11:00:00 +0000\n\nnot done yet\n"
	writeFile(t, filepath.Join(local, "Drafts", "new", "1772449200.draft1.localhost"), draft)
	sync()
	in, err := bb.store.Folder(mailbox.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	if ms := in.Messages(); len(ms) != 1 || !ms[0].Flags.Has(mailbox.FlagSeen|mailbox.FlagFlagged) {
		t.Fatalf("the bridge's INBOX after mbsync pushed \\Seen \\Flagged: %+v", ms)
	}
	drafts, err := bb.store.Folder("Drafts")
	if err != nil {
		t.Fatal(err)
	}
	ds := drafts.Messages()
	if len(ds) != 1 {
		t.Fatalf("the bridge's Drafts holds %d mails after mbsync uploaded one", len(ds))
	}
	r, _, err := drafts.Open(ds[0].UID)
	if err != nil {
		t.Fatal(err)
	}
	up, _ := io.ReadAll(r)
	r.Close()
	// Served with CRLF, stored with LF.
	if !bytes.Equal(bytes.ReplaceAll(tuid.ReplaceAll(up, nil), []byte("\r\n"), []byte("\n")), []byte(draft)) {
		t.Fatalf("the uploaded draft reads %q, want %q", up, draft)
	}
	// A second sync finds nothing to do: the UIDs mbsync recorded hold.
	before, _ := filepath.Glob(filepath.Join(local, "*", "*", "*"))
	sync()
	after, _ := filepath.Glob(filepath.Join(local, "*", "*", "*"))
	if len(after) != len(before) || len(in.Messages()) != 1 || len(drafts.Messages()) != 1 {
		t.Fatalf("a second sync changed things: %d local files (was %d), %d in INBOX, %d in Drafts", len(after), len(before), len(in.Messages()), len(drafts.Messages()))
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// mbsyncRC is an mbsync configuration for u's bridge b (its files in
// dir) over STARTTLS, a local Maildir++-less tree at local (folders as
// directories of their own), and the channel given.
func mbsyncRC(u *testnet.User, b *Bridge, dir, pw, local, channel string) string {
	return fmt.Sprintf(`IMAPAccount flowmail
Host 127.0.0.1
Port %s
User %s
Pass %s
SSLType STARTTLS
CertificateFile %s

IMAPStore remote
Account flowmail

MaildirStore local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

`, portOf(b.IMAPAddr()), UserName(u.Identity), pw, filepath.Join(dir, CertFile), local, local) + channel
}
