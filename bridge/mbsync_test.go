package bridge

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/flowmail/flowmail/block"
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
		conf := fmt.Sprintf(`IMAPAccount flowmail
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

Channel inbox
Far :remote:
Near :local:
Patterns INBOX
Create Near
SyncState *
`, portOf(b.IMAPAddr()), UserName(bob.Identity), pw, filepath.Join(cfg.Dir, CertFile), local, local)
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
