package bridge

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/mail"
)

func TestPrepareMessageStripsBccAndSeesHeaderRecipients(t *testing.T) {
	me, bob, carol := block.ID{1}, block.ID{2}, block.ID{3}
	resolve := func(a string) (block.ID, error) {
		switch {
		case a == "bob@flowmail.invalid":
			return bob, nil
		case a == mail.HeaderAddress(carol):
			return carol, nil
		}
		return block.ID{}, errors.New("unknown")
	}
	raw := "From: <" + mail.HeaderAddress(me) + ">\nTo: Bob <bob@flowmail.invalid>\nCc: " + mail.HeaderAddress(carol) +
		"\nBcc: secret@flowmail.invalid\nDate: Mon, 02 Mar 2026 10:00:00 +0000\nSubject: s\n\nline\n"
	msg, visible, err := prepareMessage([]byte(raw), me, resolve)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(msg, []byte("Bcc")) || bytes.Contains(msg, []byte("secret")) {
		t.Fatalf("Bcc header kept: %q", msg)
	}
	if bytes.Count(msg, []byte("\r\n")) != bytes.Count(msg, []byte("\n")) || !strings.HasSuffix(string(msg), "\r\n\r\nline\r\n") {
		t.Fatalf("line ends: %q", msg)
	}
	if !visible[bob] || !visible[carol] || len(visible) != 2 {
		t.Fatalf("visible recipients: %v", visible)
	}
	if _, _, err := prepareMessage([]byte(strings.Replace(raw, mail.HeaderAddress(me), mail.HeaderAddress(bob), 1)), me, resolve); !errors.Is(err, mail.ErrFromMismatch) {
		t.Fatalf("From another address: %v", err)
	}
}
