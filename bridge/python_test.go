package bridge

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
)

// TestPythonStandardLibraryClient drives the scenario with a client not
// written in Go (testdata/pyclient.py: smtplib, imaplib, email, mailbox):
// submit, idle until told, attachment identical, the Maildir file read
// by Python's mailbox module equals what IMAP serves with LF line ends,
// Sent copy, flags.
func TestPythonStandardLibraryClient(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed: the independent-client test needs it")
	}
	s := newScene(t, "alice", "bob")
	alice, bob := s.users[0], s.users[1]
	aev, bev := newEvents(), newEvents()
	a, apw := startBridge(t, bridgeConfig(alice, s.client(t), aev))
	b, bpw := startBridge(t, bridgeConfig(bob, s.client(t), bev))
	waitStartFetch(t, s.ctx, bev)
	who := func(br *Bridge, pw string) map[string]string {
		return map[string]string{"imap": br.IMAPAddr(), "smtp": br.SMTPAddr(), "user": UserName(br.me), "pw": pw, "addr": mail.HeaderAddress(br.me.ID())}
	}
	arg, _ := json.Marshal(map[string]any{"alice": who(a, apw), "bob": who(b, bpw), "bob_maildir": bob.Maildir()})
	cmd := exec.CommandContext(s.ctx, py, filepath.Join("testdata", "pyclient.py"), string(arg))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	expect := func(want string) {
		t.Helper()
		if !lines.Scan() || lines.Text() != want {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("python said %q, want %q", lines.Text(), want)
		}
	}
	expect("SENT")
	if e := waitSent(t, s.ctx, aev); e.err != nil {
		t.Fatal(e.err)
	}
	expect("IDLING")
	waitFetch(t, s.ctx, b, bev)
	expect("OK")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("python client: %v", err)
	}
	// What Python set is in the store the bridge restarts on.
	in, err := b.store.Folder(mailbox.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	ms := in.Messages()
	if len(ms) != 1 || !ms[0].Flags.Has(mailbox.FlagFlagged|mailbox.FlagSeen) {
		t.Fatalf("Bob's INBOX after Python: %+v", ms)
	}
}
