package maillist

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-message/textproto"

	"github.com/flowmail/flowmail/internal/mailtest"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/naming"
)

// TestRepostReplacesWhatNamesTheSender: the re-sent header is From the
// list (members check it against the list's signature), keeps the
// poster in Reply-To and X-Original-From, drops fields a poster could
// use to pose as a list or carry a name the list cannot vouch for, and
// keeps the rest and the body byte for byte.
func TestRepostReplacesWhatNamesTheSender(t *testing.T) {
	alice, list := mailtest.Identity(t, mailtest.Alice, 4), mailtest.Identity(t, mailtest.Dave, 4)
	body := "line one\r\nline two\r\n"
	post := "From: Alice <" + mail.HeaderAddress(alice.ID()) + ">\r\n" +
		"To: <" + mail.HeaderAddress(list.ID()) + ">\r\n" +
		"Subject: Plans\r\n" +
		"Message-Id: <x@flowmail.invalid>\r\n" +
		"List-Id: fake <fake.example>\r\n" +
		"List-Unsubscribe: <mailto:evil@example.com>\r\n" +
		"Sender: someone@example.com\r\n" +
		naming.CertHeader + ": AAAA\r\n" +
		"\r\n" + body
	var out bytes.Buffer
	p, err := Repost(&out, strings.NewReader(post), alice.ID(), list.ID(), "friends")
	if err != nil {
		t.Fatal(err)
	}
	if p.Subject != "Plans" || p.Unsubscribe || p.Poster != alice.ID() {
		t.Fatalf("post %+v", p)
	}
	if err := mail.CheckFrom(out.Bytes(), list.ID()); err != nil {
		t.Fatalf("the re-sent From is not the list's: %v", err)
	}
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(out.Bytes())))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"List-Id", "List-Unsubscribe", "Sender", naming.CertHeader} {
		for _, v := range h.Values(k) {
			if strings.Contains(v, "fake") || strings.Contains(v, "example") || v == "AAAA" {
				t.Errorf("%s: %q from the post survived", k, v)
			}
		}
	}
	if len(h.Values("List-Id")) != 1 || h.Get("Message-Id") != "<x@flowmail.invalid>" || !strings.Contains(h.Get("From"), "Alice via friends") {
		t.Errorf("header:\n%s", out.String())
	}
	if !strings.HasSuffix(out.String(), "\r\n\r\n"+body) {
		t.Errorf("body changed:\n%q", out.String())
	}

	// A post whose From is not its signer is not re-sent.
	_, err = Repost(&out, strings.NewReader(post), list.ID(), list.ID(), "friends")
	if !errors.Is(err, mail.ErrFromMismatch) {
		t.Fatalf("From mismatch: %v", err)
	}
	// An unsubscribe is recognised whatever its case and spacing.
	unsub := strings.Replace(post, "Subject: Plans", "Subject:  UnSubscribe ", 1)
	if p, err := Repost(&out, strings.NewReader(unsub), alice.ID(), list.ID(), "friends"); err != nil || !p.Unsubscribe {
		t.Fatalf("unsubscribe: %+v, %v", p, err)
	}
}
