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

// TestComposeLegacyRecipients: a legacy address in To or Cc is written
// as given beside flowmail ones; addresses that are not one plain
// addr-spec, or that are at flowmail.invalid, are refused; the relay
// field names legacy mailboxes only and reads back as an address list.
func TestComposeLegacyRecipients(t *testing.T) {
	alice, bob := testIdentity(t, seedAlice, 0), testIdentity(t, seedBob, 0)
	m := &Message{
		From: Mailbox{Address: alice.ID()},
		To:   []Mailbox{{Name: "Bob", Address: bob.ID()}, {Name: "Carol Legacy", Email: "carol@legacy.example"}},
		Cc:   []Mailbox{{Email: "dave@legacy.example"}},
		Date: testNow, Subject: "hi", Text: "x",
	}
	b, err := Compose(m, detRand(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckFrom(b, alice.ID()); err != nil {
		t.Fatal(err)
	}
	r, err := gomail.CreateReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	to, _ := r.Header.AddressList("To")
	cc, _ := r.Header.AddressList("Cc")
	if len(to) != 2 || to[0].Address != HeaderAddress(bob.ID()) || to[1].Address != "carol@legacy.example" || to[1].Name != "Carol Legacy" ||
		len(cc) != 1 || cc[0].Address != "dave@legacy.example" {
		t.Fatalf("To %v, Cc %v", to, cc)
	}
	for _, bad := range []string{"carol", "@legacy.example", "carol@", "a@b@c", "carol@legacy.example, eve@evil.example",
		"Carol <carol@legacy.example>", "carol@legacy.example\r\nBcc: eve@evil.example", "x@" + MailDomain, "x@FLOWMAIL.INVALID"} {
		bad := bad
		m2 := *m
		m2.Cc = []Mailbox{{Email: bad}}
		if _, err := Compose(&m2, detRand(1)); !errors.Is(err, ErrLegacyAddress) {
			t.Errorf("Cc %q: %v, want ErrLegacyAddress", bad, err)
		}
		if err := WriteRelayTo(io.Discard, []Mailbox{{Email: bad}}); !errors.Is(err, ErrLegacyAddress) {
			t.Errorf("relay to %q: %v, want ErrLegacyAddress", bad, err)
		}
	}
	m3 := *m
	m3.From = Mailbox{Email: "alice@legacy.example"}
	if _, err := Compose(&m3, detRand(1)); !errors.Is(err, ErrLegacyAddress) {
		t.Errorf("a legacy From: %v", err)
	}

	var relay bytes.Buffer
	if err := WriteRelayTo(&relay, []Mailbox{{Address: bob.ID()}}); !errors.Is(err, ErrLegacyAddress) {
		t.Errorf("relay to a flowmail address: %v", err)
	}
	if err := WriteRelayTo(&relay, nil); !errors.Is(err, ErrLegacyAddress) {
		t.Errorf("relay to nobody: %v", err)
	}
	var many []Mailbox
	for i := range 40 {
		many = append(many, Mailbox{Email: strings.Repeat("x", i+1) + "@legacy.example"})
	}
	relay.Reset()
	if err := WriteRelayTo(&relay, many); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.SplitAfter(relay.String(), "\r\n") {
		if len(line) > 78+2 && strings.Contains(line[:78], " ") {
			t.Errorf("relay field line of %d bytes not folded: %q", len(line), line)
		}
	}
	field := bytes.Clone(relay.Bytes())
	if !bytes.HasPrefix(field, []byte(RelayHeader+": ")) || !bytes.HasSuffix(field, []byte("\r\n")) || bytes.HasSuffix(field, []byte("\r\n\r\n")) {
		t.Fatalf("relay field %q is not one CRLF-ended field", field)
	}
	r2, err := gomail.CreateReader(bytes.NewReader(append(bytes.Clone(field), b...)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := r2.Header.AddressList(RelayHeader)
	if err != nil || len(got) != len(many) || got[39].Address != many[39].Email {
		t.Fatalf("%s reads back as %d addresses (%v), want %d", RelayHeader, len(got), err, len(many))
	}
	if err := CheckFrom(append(field, b...), alice.ID()); err != nil {
		t.Fatalf("the relay field before the message breaks its From: %v", err)
	}
}
