package bridge

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/gateway"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/testseed"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
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
	r, visible, err := prepareMessage(strings.NewReader(raw), me, resolve, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := io.ReadAll(r)
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
	if _, _, err := prepareMessage(strings.NewReader(strings.Replace(raw, mail.HeaderAddress(me), mail.HeaderAddress(bob), 1)), me, resolve, "", 0); !errors.Is(err, mail.ErrFromMismatch) {
		t.Fatalf("From another address: %v", err)
	}
	long := "From: <" + mail.HeaderAddress(me) + ">\nX-Long: " + strings.Repeat("a", mail.MaxHeaderSize) + "\n\nbody\n"
	if _, _, err := prepareMessage(strings.NewReader(long), me, resolve, "", 0); !errors.Is(err, mail.ErrHeaderSize) {
		t.Fatalf("a header over %d bytes: %v", mail.MaxHeaderSize, err)
	}

	// With legacy recipients: the bridge's certificate field first, in
	// place of the client's; a relay field the client wrote never stays
	// (flowmail recipients would see it); the relay field's room is kept.
	carried := "Flowmail-Name-Certificate: AAAA\r\n BBBB\r\n"
	client := "Flowmail-Relay-To: someone@legacy.example\nFlowmail-Name-Certificate: forged\n" + raw
	for _, c := range []string{"", carried} {
		r, _, err := prepareMessage(strings.NewReader(client), me, resolve, c, 100)
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(r)
		if !strings.HasPrefix(string(msg), c) || bytes.Contains(msg, []byte("someone@legacy")) || (c != "" && bytes.Contains(msg, []byte("forged"))) {
			t.Fatalf("carried %q: %q", c, msg)
		}
	}
	almost := "From: <" + mail.HeaderAddress(me) + ">\nDate: Mon, 02 Mar 2026 10:00:00 +0000\nX-Long: " + strings.Repeat("a", mail.MaxHeaderSize-200) + "\n\nbody\n"
	if _, _, err := prepareMessage(strings.NewReader(almost), me, resolve, "", 0); err != nil {
		t.Fatalf("a header just within %d bytes: %v", mail.MaxHeaderSize, err)
	}
	if _, _, err := prepareMessage(strings.NewReader(almost), me, resolve, carried, 200); !errors.Is(err, mail.ErrHeaderSize) {
		t.Fatalf("a header that leaves no room for the relay field: %v", err)
	}
}

// TestLegacyLimitIsTheGateways: what the bridge accepts for the gateway,
// the gateway relays (docs/PROTOCOL.md 20.7).
func TestLegacyLimitIsTheGateways(t *testing.T) {
	if MaxLegacyRecipients != gateway.MaxRelayRecipients {
		t.Fatalf("the bridge takes %d legacy recipients, the gateway %d", MaxLegacyRecipients, gateway.MaxRelayRecipients)
	}
}

// toCRLF is the conversion mailbox.CRLFReader streams, on a whole message.
func toCRLF(b []byte) []byte {
	var out []byte
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

// TestCRLFReaderAnySplit (mailbox.CRLFReader, tested here beside
// prepareMessage, its user on outside bytes) streams random mixes of LF, CR and CRLF through
// readers that cut them anywhere (one byte at a time, odd buffer sizes)
// and compares with the whole-message conversion.
func TestCRLFReaderAnySplit(t *testing.T) {
	rng := testseed.Rand(t)
	alphabet := []byte("a\r\n")
	for range 300 {
		in := make([]byte, rng.IntN(200))
		for i := range in {
			in[i] = alphabet[rng.IntN(len(alphabet))]
		}
		want := toCRLF(in)
		var src io.Reader = bytes.NewReader(in)
		if rng.IntN(2) == 0 {
			src = iotest.OneByteReader(src)
		}
		r := mailbox.NewCRLFReader(src)
		var got []byte
		buf := make([]byte, 1+rng.IntN(7))
		for {
			n, err := r.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%q: got %q, want %q", in, got, want)
		}
	}
}

// FuzzPrepareMessage feeds submitted messages (outside bytes, from any
// SMTP client): never a panic; an accepted one is all CRLF, has no Bcc
// header and keeps its body byte for byte.
func FuzzPrepareMessage(f *testing.F) {
	me := block.ID{1}
	from := "From: <" + mail.HeaderAddress(me) + ">\r\nDate: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
	f.Add([]byte(from + "To: bob@flowmail.invalid\r\nBcc: x@y\r\n\r\nbody\r\n"))
	f.Add([]byte(from + "\nbare\rcr\n"))
	f.Add([]byte("From: a\n\n"))
	f.Add([]byte(from + "To: =?utf-8?q?x?= <" + mail.HeaderAddress(me) + ">,\r\n  \"q\" <a@b>\r\n\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, _, err := prepareMessage(bytes.NewReader(raw), me, func(string) (block.ID, error) { return block.ID{2}, nil }, "", 0)
		if err != nil {
			return
		}
		msg, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Count(msg, []byte("\n")) != bytes.Count(msg, []byte("\r\n")) {
			t.Fatalf("a LF without CR in %q", msg)
		}
		head, body, ok := bytes.Cut(msg, []byte("\r\n\r\n"))
		if !ok {
			t.Fatalf("no end of header in %q", msg)
		}
		if bytes.Contains(bytes.ToLower(head), []byte("\nbcc:")) || bytes.HasPrefix(bytes.ToLower(head), []byte("bcc:")) {
			t.Fatalf("Bcc kept: %q", head)
		}
		if !bytes.HasSuffix(toCRLF(raw), body) {
			t.Fatalf("body changed: %q from %q", body, raw)
		}
	})
}

// FuzzRecipient feeds RCPT TO arguments and To/Cc addresses (outside
// bytes) to the resolver: never a panic; every refusal is
// ErrUnknownRecipient; an fm1 address is accepted only as the address it
// names, and a contact name is only ever looked up without its domain.
func FuzzRecipient(f *testing.F) {
	bob := block.ID{2, 7}
	for _, s := range []string{
		identity.FormatAddress(bob), mail.HeaderAddress(bob), "<" + mail.HeaderAddress(bob) + ">",
		strings.ToUpper(mail.HeaderAddress(bob)), "bob@flowmail.invalid", "bob", "alice@example.org", "fm1x@flowmail.invalid", "", "<>", "@",
	} {
		f.Add(s)
	}
	b := &Bridge{cfg: Config{Resolve: func(_ context.Context, name string) (block.ID, error) {
		if strings.EqualFold(name, "bob") {
			return bob, nil
		}
		return block.ID{}, errors.New("not a contact")
	}}}
	f.Fuzz(func(t *testing.T, to string) {
		id, err := b.resolve(context.Background(), to)
		if err != nil {
			if !errors.Is(err, ErrUnknownRecipient) {
				t.Fatalf("%q: untyped error %v", to, err)
			}
			return
		}
		if id != bob && !strings.Contains(strings.ToLower(to), identity.FormatAddress(id)) {
			t.Fatalf("%q resolved to %s", to, identity.FormatAddress(id))
		}
	})
}
