package mail

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	gomail "github.com/emersion/go-message/mail"

	"github.com/flowmail/flowmail/identity"
)

func TestComposeSinglePartWithoutAttachments(t *testing.T) {
	alice, bob := testIdentity(t, seedAlice, 0), testIdentity(t, seedBob, 0)
	m := &Message{
		From:    Mailbox{Name: "Alice Example", Address: alice.ID()},
		To:      []Mailbox{{Name: "Bob", Address: bob.ID()}},
		Subject: "lunch?", Text: "At noon.\n", Date: testNow,
	}
	b, err := Compose(m, detRand(1))
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Compose(m, detRand(1))
	if !bytes.Equal(b, again) {
		t.Fatal("the same message and randomness gave different bytes")
	}
	if err := CheckFrom(b, alice.ID()); err != nil {
		t.Fatal(err)
	}
	r, err := gomail.CreateReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if ct, _, _ := r.Header.ContentType(); ct != "text/plain" {
		t.Fatalf("Content-Type %q, want text/plain", ct)
	}
	to, _ := r.Header.AddressList("To")
	if len(to) != 1 || to[0].Name != "Bob" || to[0].Address != HeaderAddress(bob.ID()) {
		t.Fatalf("To %v", to)
	}
	id, _ := r.Header.MessageID()
	if !strings.HasSuffix(id, "@"+MailDomain) {
		t.Fatalf("Message-ID %q", id)
	}
	if d, _ := r.Header.Date(); !d.Equal(testNow) {
		t.Fatalf("Date %v", d)
	}
	p, err := r.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	if body, _ := io.ReadAll(p.Body); string(body) != "At noon.\r\n" {
		t.Fatalf("body %q", body)
	}
}

func TestComposeMultipartWithBinaryAttachments(t *testing.T) {
	alice, bob, carol := testIdentity(t, seedAlice, 0), testIdentity(t, seedBob, 0), testIdentity(t, seedCarol, 0)
	bin := randomBytes(10000, 1)
	b, err := Compose(&Message{
		From: Mailbox{Address: alice.ID()}, To: []Mailbox{{Address: bob.ID()}}, Cc: []Mailbox{{Name: "Çarol", Address: carol.ID()}},
		Subject: "files", Text: "two files", Date: testNow, MessageID: "fixed@example.invalid",
		Attachments: []Attachment{{Name: "a.bin", Data: bin}, {Name: "résumé.txt", ContentType: "text/plain; charset=utf-8", Data: []byte("cv")}},
	}, detRand(2))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("Content-Transfer-Encoding: base64")) {
		t.Fatal("binary attachment not base64-encoded")
	}
	r, err := gomail.CreateReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if ct, _, _ := r.Header.ContentType(); ct != "multipart/mixed" {
		t.Fatalf("Content-Type %q", ct)
	}
	if id, _ := r.Header.MessageID(); id != "fixed@example.invalid" {
		t.Fatalf("Message-ID %q", id)
	}
	cc, _ := r.Header.AddressList("Cc")
	if len(cc) != 1 || cc[0].Name != "Çarol" {
		t.Fatalf("Cc %v", cc)
	}
	text, got := readParts(t, r)
	if text != "two files" || !bytes.Equal(got["a.bin"], bin) || string(got["résumé.txt"]) != "cv" {
		t.Fatalf("text %q, attachments %q", text, mapKeys(got))
	}
}

func TestComposeRefusesIncompleteMessages(t *testing.T) {
	alice := testIdentity(t, seedAlice, 0)
	to := []Mailbox{{Address: alice.ID()}}
	for name, m := range map[string]*Message{
		"no date":                {From: to[0], To: to},
		"no recipient":           {From: to[0], Date: testNow},
		"text not UTF-8":         {From: to[0], To: to, Date: testNow, Text: "\xff"},
		"multipart attachment":   {From: to[0], To: to, Date: testNow, Attachments: []Attachment{{ContentType: "multipart/mixed"}}},
		"malformed content type": {From: to[0], To: to, Date: testNow, Attachments: []Attachment{{ContentType: "text/"}}},
	} {
		if _, err := Compose(m, detRand(0)); err == nil {
			t.Errorf("%s: composed", name)
		}
	}
}

func TestCheckFrom(t *testing.T) {
	alice, mallory := testIdentity(t, seedAlice, 0), testIdentity(t, seedMallory, 0)
	a := HeaderAddress(alice.ID())
	for _, tc := range []struct {
		name, msg string
		want      error
	}{
		{"bare address", "From: " + a + "\r\n\r\nbody", nil},
		{"display name", "From: \"Alice A.\" <" + a + ">\r\nTo: x@y\r\n\r\n", nil},
		{"upper case", "From: " + strings.ToUpper(a) + "\r\n\r\n", nil},
		{"encoded name", "From: =?utf-8?q?=C3=84lice?= <" + a + ">\r\n\r\n", nil},
		{"no header at all", "hello", ErrFromHeader},
		{"no From", "To: " + a + "\r\n\r\n", ErrFromHeader},
		{"two From headers", "From: " + a + "\r\nFrom: " + a + "\r\n\r\n", ErrFromHeader},
		{"two mailboxes", "From: " + a + ", " + HeaderAddress(mallory.ID()) + "\r\n\r\n", ErrFromHeader},
		{"SMTP address", "From: alice@example.com\r\n\r\n", ErrFromHeader},
		{"address typo", "From: " + a[:10] + "x" + a[11:] + "\r\n\r\n", ErrFromHeader},
		{"other domain", "From: " + identity.FormatAddress(alice.ID()) + "@example.com\r\n\r\n", ErrFromHeader},
		{"someone else", "From: Alice <" + HeaderAddress(mallory.ID()) + ">\r\n\r\n", ErrFromMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckFrom([]byte(tc.msg), alice.ID())
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("CheckFrom = %v, want %v", err, tc.want)
			}
		})
	}
}

func mapKeys(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
