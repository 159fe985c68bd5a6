package gateway

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/naming"
	"github.com/flowmail/flowmail/testnet"
)

// TestInboundThroughExim: a mail handed to exim for alice@example.test
// reaches the gateway DKIM-signed by exim for legacy.test, and alice
// fetches it from the network with what the gateway checked; the
// gateway's disk never held its body.
func TestInboundThroughExim(t *testing.T) {
	t.Parallel()
	s := newScene(t, true, nil)
	body := "the body only alice may read 4d2f"
	if err := smtpTransaction(t, s.mta.Addr, "client.legacy.test", "bob@legacy.test", []string{"alice@example.test"},
		legacyMessage("Bob <bob@legacy.test>", "alice@example.test", "hello alice", body)); err != nil {
		t.Fatalf("exim refused the mail: %v", err)
	}
	if r := s.waitInbound(t); r.Err != nil || r.Index != 1 {
		t.Fatalf("inbound: %+v", r)
	}
	got := s.fetch(t)
	if len(got) != 1 {
		t.Fatalf("alice fetched %d mails, want 1", len(got))
	}
	m := got[0]
	for _, want := range []string{
		"Authentication-Results: gw.example.test; spf=pass",
		"dkim=pass header.d=legacy.test",
		"dmarc=pass header.from=legacy.test",
		FromHeader + ": Bob <bob@legacy.test>",
		"Reply-To: Bob <bob@legacy.test>",
		"From: <" + mail.HeaderAddress(s.gwUser.ID()) + ">",
		naming.CertHeader + ":",
		"Subject: hello alice",
		body,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("the mail lacks %q:\n%s", want, m)
		}
	}
	assertNotOnDisk(t, s.gw.cfg.Spool, body)
}

// assertNotOnDisk searches every file under dir for needle.
func assertNotOnDisk(t *testing.T, dir, needle string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		n++
		if bytes.Contains(b, []byte(needle)) {
			t.Errorf("%s holds the plaintext", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("searched %d files of the gateway's spool", n)
}

// TestOutboundThroughExim: alice's network mail to a legacy address
// goes out through the gateway to legacy.test's MX (exim), which
// delivers it to the sink with a DKIM signature go-msgauth verifies; a
// recipient exim refuses, and a mail without alice's certificate, come
// back to alice as bounces over the network.
func TestOutboundThroughExim(t *testing.T) {
	t.Parallel()
	s := newScene(t, true, nil)
	me := mail.HeaderAddress(s.alice.ID())
	certified := naming.CarriedField(s.aliceCrt.Bytes())
	send := func(msg []byte) {
		t.Helper()
		built, err := testnet.SendMail(s.ctx, s.client, s.alice.Identity, []block.ID{s.gwUser.ID()}, msg, nil)
		if err != nil {
			t.Fatal(err)
		}
		built.Release()
	}
	send([]byte(certified + string(crlf("From: Alice <"+me+">\nTo: Bob <bob@legacy.test>\n"+mail.RelayHeader+": bob@legacy.test\nSubject: to bob\nDate: Wed, 02 Dec 2026 05:00:00 +0000\n\nhello bob\n"))))
	send([]byte(certified + string(crlf("From: <"+me+">\nTo: nobody@refuse.test\n"+mail.RelayHeader+": nobody@refuse.test\nSubject: to nobody\nDate: Wed, 02 Dec 2026 05:00:00 +0000\n\nhello?\n"))))
	send(crlf("From: <" + me + ">\nTo: bob@legacy.test\n" + mail.RelayHeader + ": bob@legacy.test\nSubject: uncertified\nDate: Wed, 02 Dec 2026 05:00:00 +0000\n\nno name\n"))

	reps := s.relayPass(t)
	if len(reps) != 3 {
		t.Fatalf("%d relay reports, want 3: %+v", len(reps), reps)
	}
	var delivered, bounced int
	for _, r := range reps {
		delivered += len(r.Delivered)
		bounced += len(r.Bounced)
		if r.BounceErr != nil || len(r.Deferred) != 0 || r.Sender != s.alice.ID() {
			t.Errorf("report %+v", r)
		}
	}
	if delivered != 1 || bounced != 2 {
		t.Fatalf("delivered %d, bounced %d; want 1 and 2: %+v", delivered, bounced, reps)
	}

	var got []byte
	select {
	case got = <-s.sink.got:
	case <-s.ctx.Done():
		t.Fatal("exim delivered nothing to the sink before the hang guard")
	}
	for _, want := range []string{"From: \"Alice\" <alice@example.test>", "hello bob", "DKIM-Signature:"} {
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("the delivered mail lacks %q:\n%s", want, got)
		}
	}
	if bytes.Contains(got, []byte(mail.RelayHeader)) || bytes.Contains(got, []byte(naming.CertHeader)) {
		t.Errorf("flowmail's fields reached the legacy side:\n%s", got)
	}
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(got), &dkim.VerifyOptions{LookupTXT: func(d string) ([]string, error) { return s.dns.LookupTXT(s.ctx, d) }})
	if err != nil {
		t.Fatal(err)
	}
	ok := false
	for _, v := range verifs {
		t.Logf("DKIM d=%s: %v", v.Domain, v.Err)
		ok = ok || v.Domain == domain && v.Err == nil
	}
	if !ok {
		t.Errorf("no valid DKIM signature of %s:\n%s", domain, got)
	}
	// (exim looks the key up in the machine's DNS, not in nsd, so its
	// own check cannot pass here: go-msgauth's above is the one.)

	bounces := s.fetch(t)
	if len(bounces) != 2 {
		t.Fatalf("alice fetched %d bounces, want 2", len(bounces))
	}
	all := strings.Join(bounces, "\n")
	for _, want := range []string{"Subject: Undelivered: to nobody", "nobody@refuse.test", "no such user here", "Subject: Undelivered: uncertified", naming.CertHeader} {
		if !strings.Contains(all, want) {
			t.Errorf("the bounces lack %q:\n%s", want, all)
		}
	}
}

// TestInboundRefusals talks SMTP to the gateway directly: each bad
// input has its reply, and only the one mail that passes is sent.
func TestInboundRefusals(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	s := newScene(t, false, func(c *Config) { c.MaxInboundSize = limit; c.TLS = selfSigned(t, "gw.example.test") })
	gw := s.gw.Addr().String()
	code := func(err error) int {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return se.Code
		}
		t.Fatalf("not an SMTP refusal: %v", err)
		return 0
	}
	to := []string{"alice@example.test"}
	cases := []struct {
		name     string
		from     string
		rcpts    []string
		msg      []byte
		want     int
		contains string
	}{
		{"flowmail sender in MAIL FROM", "alice@example.test", to, legacyMessage("x@legacy.test", "alice@example.test", "a", "b"), 550, "flowmail sender"},
		{"flowmail sender in From", "mallory@legacy.test", to, legacyMessage("Alice <alice@Example.TEST>", "alice@example.test", "forged", "b"), 550, "flowmail sender"},
		{"fm1 address in From", "mallory@legacy.test", to, legacyMessage("<"+mail.HeaderAddress(s.alice.ID())+">", "alice@example.test", "forged", "b"), 550, "flowmail sender"},
		{"relaying", "bob@legacy.test", []string{"carol@other.test"}, legacyMessage("bob@legacy.test", "carol@other.test", "a", "b"), 550, "no relaying"},
		{"unknown user", "bob@legacy.test", []string{"nobody@example.test"}, legacyMessage("bob@legacy.test", "nobody@example.test", "a", "b"), 550, "no such user"},
		{"the gateway itself", "bob@legacy.test", []string{"gateway@example.test"}, legacyMessage("bob@legacy.test", "gateway@example.test", "a", "b"), 550, "gateway itself"},
		{"oversize", "bob@legacy.test", to, legacyMessage("bob@legacy.test", "alice@example.test", "big", strings.Repeat("0123456789abcdef\r\n", limit/16)), 552, ""},
		{"two From", "bob@legacy.test", to, crlf("From: a@legacy.test\nFrom: b@legacy.test\nSubject: x\n\nb\n"), 550, "From"},
		{"DKIM fails, DMARC reject", "bounce@other.test", to, tampered(t, s, "Bob <bob@legacy.test>", "dkim fails"), 550, "DMARC"},
	}
	for _, c := range cases {
		err := smtpTransaction(t, gw, "client.test", c.from, c.rcpts, c.msg)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if got := code(err); got != c.want || !strings.Contains(err.Error(), c.contains) {
			t.Errorf("%s: %v; want %d with %q", c.name, err, c.want, c.contains)
		}
	}
	// Rate limit: the sender has had its mails this window.
	s.gw.inMail.take("flood@legacy.test", InboundPerSender, s.gw.clock.Now())
	if err := smtpTransaction(t, gw, "client.test", "flood@legacy.test", to, legacyMessage("flood@legacy.test", "alice@example.test", "a", "b")); err == nil || code(err) != 451 {
		t.Errorf("over the sender's rate limit: %v, want 451", err)
	}

	// A DKIM failure under a DMARC policy of none is delivered, and says
	// so (over STARTTLS: the gateway offers it when it has a certificate).
	if err := smtpTLSTransaction(t, gw, "client.test", "bounce@other.test", to, tampered(t, s, "Carol <carol@soft.test>", "dkim fails softly")); err != nil {
		t.Fatalf("DKIM failure under p=none: %v", err)
	}
	for {
		r := s.waitInbound(t)
		if r.Err == nil {
			break
		}
	}
	got := s.fetch(t)
	if len(got) != 1 {
		t.Fatalf("alice fetched %d mails, want only the p=none one", len(got))
	}
	for _, want := range []string{"spf=none", "dkim=fail", "header.d=legacy.test", "dmarc=fail", "header.from=soft.test", "dkim fails softly"} {
		if !strings.Contains(got[0], want) {
			t.Errorf("the mail lacks %q:\n%s", want, got[0])
		}
	}
}

// tampered is a message from from, DKIM-signed with legacy.test's key,
// whose body was changed after signing.
func tampered(t *testing.T, s *scene, from, subject string) []byte {
	t.Helper()
	msg := legacyMessage(from, "alice@example.test", subject, "signed body")
	var b bytes.Buffer
	if err := dkim.Sign(&b, bytes.NewReader(msg), &dkim.SignOptions{Domain: "legacy.test", Selector: "sel", Signer: s.legacy}); err != nil {
		t.Fatal(err)
	}
	return bytes.Replace(b.Bytes(), []byte("signed body"), []byte("changed body"), 1)
}
