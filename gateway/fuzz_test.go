package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/mail"
)

var fuzzGateway = block.ID{1, 2, 3}

// FuzzParseInbound: any bytes from an SMTP client either are refused
// with a typed error or wrap into a message whose From is the gateway's
// (what mail.Build requires) and whose only flowmail fields are the
// gateway's own.
func FuzzParseInbound(f *testing.F) {
	f.Add(legacyMessage("Bob <bob@legacy.test>", "alice@example.test", "hi", "body"))
	f.Add(crlf("From: a@example.test\nSubject: x\n\nb\n"))
	f.Add(crlf("From: a@b.test, c@d.test\n\n"))
	f.Add(crlf("From: x@y.test\nFlowmail-Name-Certificate: AAAA\nAuthentication-Results: gw; dkim=pass\nReply-To: r@y.test\n\nb\n"))
	f.Add([]byte("\r\n"))
	f.Add(crlf("From: =?utf-8?q?=C3=A9?= <x@y.test>\n X-Folded: yes\n\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		in, err := ParseInbound(msg, domain)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrFrom) && !errors.Is(err, ErrFlowmailSender) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		if checkNotFlowmail(in.From, domain) != nil {
			t.Fatalf("accepted a flowmail sender %q", in.From)
		}
		out := Wrap(in, WrapInput{Gateway: fuzzGateway, AuthResults: "gw; spf=none", Received: "from x", Now: time.Unix(0, 0)})
		if err := mail.CheckFrom(out, fuzzGateway); err != nil {
			t.Fatalf("the wrapped message fails the From check: %v\n%q", err, out)
		}
		h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(out)))
		if err != nil {
			t.Fatalf("the wrapped header does not parse: %v", err)
		}
		for f := h.Fields(); f.Next(); {
			k := strings.ToLower(f.Key())
			if strings.HasPrefix(k, "flowmail-") && k != strings.ToLower(FromHeader) {
				t.Fatalf("an outside %s field came through", f.Key())
			}
		}
		if n := len(h.Values(AuthResultsHeader)); n != 1 {
			t.Fatalf("%d Authentication-Results fields", n)
		}
	})
}

// FuzzParseOutbound: any header a fetched mail has either is refused
// with a typed error or gives 1 to MaxRelayRecipients legacy recipients
// and a relayed header without flowmail fields.
func FuzzParseOutbound(f *testing.F) {
	f.Add(crlf("From: <fm1x@flowmail.invalid>\nFlowmail-Relay-To: bob@legacy.test, Carol <carol@other.test>\nSubject: x\n\nb\n"))
	f.Add(crlf("Flowmail-Relay-To: alice@example.test\n\n"))
	f.Add(crlf("Flowmail-Relay-To: undisclosed:;\n\n"))
	f.Add(crlf("From: x\nFlowmail-Relay-To: a@b.test\nFlowmail-Relay-To: c@d.test\nDKIM-Signature: v=1\nReceived: x\n\n"))
	f.Add([]byte("no header end"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		o, err := ParseOutbound(bufio.NewReaderSize(bytes.NewReader(msg), mail.MaxHeaderSize), domain)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNoRelay) && !errors.Is(err, ErrRecipient) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		if len(o.RelayTo) == 0 || len(o.RelayTo) > MaxRelayRecipients {
			t.Fatalf("%d relay recipients", len(o.RelayTo))
		}
		for _, r := range o.RelayTo {
			if checkNotFlowmail(lower(r), domain) != nil {
				t.Fatalf("relays to flowmail address %q", r)
			}
		}
		head := o.RelayHeaderBytes("alice@"+domain, "<id@"+domain+">")
		h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			t.Fatalf("the relayed header does not parse: %v\n%q", err, head)
		}
		for f := h.Fields(); f.Next(); {
			if dropOutbound(f.Key()) && !strings.EqualFold(f.Key(), "From") {
				t.Fatalf("field %s reached the relayed header", f.Key())
			}
		}
		if n := len(h.Values("From")); n != 1 {
			t.Fatalf("%d From fields", n)
		}
	})
}

// FuzzRetryState: any bytes in the retry file either are refused with
// ErrRetryState or are a queue that writes back to the same bytes (one
// encoding per queue, so nothing can hide in it), within its bounds.
func FuzzRetryState(f *testing.F) {
	f.Add([]byte(retryMagic + "\n"))
	f.Add([]byte(retryMagic + "\n1796188000.M1P2.host 3 1796191600 0000000000000005\n1796188001.M2P2.host 1 0 0000000000000000\n"))
	f.Add([]byte(retryMagic + "\na 7 253402300799 ffffffffffffffff\n"))
	f.Add([]byte(retryMagic + "\nb 1 0 0000000000000000\na 1 0 0000000000000000\n"))
	f.Add([]byte("flowmail-gateway-retries 1\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := decodeRetries(b)
		if err != nil {
			if !errors.Is(err, ErrRetryState) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		if len(q) > MaxDeferred {
			t.Fatalf("%d mails", len(q))
		}
		for name, r := range q {
			if checkSpoolName(name) != nil || r.attempts < 1 || r.attempts >= MaxRelayAttempts {
				t.Fatalf("accepted %q %+v", name, r)
			}
		}
		if out := encodeRetries(q); !bytes.Equal(out, b) {
			t.Fatalf("re-encoded %q, read %q", out, b)
		}
	})
}
