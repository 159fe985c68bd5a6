package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	gomessage "github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/naming"
)

// Header fields of docs/PROTOCOL.md 20.
const (
	// FromHeader keeps an inbound message's original From value.
	FromHeader = "Flowmail-Gateway-From"
	// AuthResultsHeader is RFC 8601's field.
	AuthResultsHeader = "Authentication-Results"
)

// dropInbound are fields the gateway removes from an inbound message:
// the recipient must see only what the gateway itself checked, and no
// flowmail field an outsider wrote.
func dropInbound(key string) bool {
	k := strings.ToLower(key)
	return strings.HasPrefix(k, "flowmail-") || k == "authentication-results" ||
		k == "return-path" || k == "bcc" || k == "from" || k == "reply-to"
}

// dropOutbound are fields removed from an outbound message before it is
// signed and relayed: flowmail's own, the sender's From (rewritten), and
// anything that would pass as the gateway's own checks or signature.
func dropOutbound(key string) bool {
	k := strings.ToLower(key)
	return strings.HasPrefix(k, "flowmail-") || k == "authentication-results" ||
		k == "dkim-signature" || k == "return-path" || k == "bcc" || k == "from" ||
		k == "sender" || k == "received"
}

// Inbound is an inbound message's header, read and checked.
type Inbound struct {
	Header   textproto.Header
	From     string // the From field's one address
	FromHost string // its domain, lower case
	Body     []byte // after the header section
}

// ParseInbound reads an inbound message (CRLF line ends) and checks its
// From against domain (20.3): exactly one mailbox, neither of domain nor
// of flowmail.invalid.
func ParseInbound(msg []byte, domain string) (*Inbound, error) {
	end := headerEnd(msg, MaxInboundHeader)
	if end < 0 {
		return nil, fmt.Errorf("%w: no end of the header section in the first %d bytes", ErrMalformed, MaxInboundHeader)
	}
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(msg[:end])))
	if err != nil {
		return nil, fmt.Errorf("%w: the header does not parse: %v", ErrMalformed, err)
	}
	in := &Inbound{Header: h, Body: msg[end:]}
	if n := len(h.Values("From")); n != 1 {
		return nil, fmt.Errorf("%w: %d From fields", ErrFrom, n)
	}
	mh := gomail.Header{Header: gomessage.Header{Header: h}}
	from, err := mh.AddressList("From")
	if err != nil || len(from) != 1 {
		return nil, fmt.Errorf("%w: %q", ErrFrom, clip(h.Get("From")))
	}
	in.From = from[0].Address
	if err := checkNotFlowmail(in.From, domain); err != nil {
		return nil, err
	}
	_, host, _ := strings.Cut(in.From, "@")
	in.FromHost = strings.ToLower(host)
	return in, nil
}

// checkNotFlowmail refuses an address that claims a flowmail sender.
func checkNotFlowmail(addr, domain string) error {
	_, host, ok := strings.Cut(addr, "@")
	if !ok {
		return nil
	}
	if norm, err := naming.NormaliseDomain(host); err == nil {
		host = norm
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == domain || host == mail.MailDomain {
		return fmt.Errorf("%w: %q", ErrFlowmailSender, clip(addr))
	}
	return nil
}

// headerEnd returns the offset just past the blank line that ends the
// header section within the first limit bytes, or -1.
func headerEnd(msg []byte, limit int) int {
	if bytes.HasPrefix(msg, []byte("\r\n")) {
		return 2
	}
	head := msg[:min(len(msg), limit)]
	i := bytes.Index(head, []byte("\r\n\r\n"))
	if i < 0 {
		if len(msg) <= limit && bytes.HasSuffix(msg, []byte("\r\n")) {
			return len(msg) // a header section and no body
		}
		return -1
	}
	return i + 4
}

// WrapInput is what the gateway adds to an inbound message.
type WrapInput struct {
	Gateway     block.ID // the gateway's address: From
	Certificate []byte   // its name certificate, carried (19.8)
	AuthResults string   // the Authentication-Results value
	Received    string   // the trace field value (RFC 5321 4.4)
	Now         time.Time
}

// Wrap writes the network mail for in (20.4): the gateway's certificate
// and From, the original From kept in FromHeader and as Reply-To (unless
// the message has one), the gateway's Authentication-Results and
// Received, then the original fields less dropInbound's, then the body.
func Wrap(in *Inbound, w WrapInput) []byte {
	var b bytes.Buffer
	if len(w.Certificate) > 0 {
		b.WriteString(naming.CarriedField(w.Certificate))
	}
	writeField(&b, "From", "<"+mail.HeaderAddress(w.Gateway)+">")
	rt := in.Header.Get("Reply-To")
	if rt == "" {
		rt = in.Header.Get("From")
	}
	writeField(&b, "Reply-To", rt)
	writeField(&b, FromHeader, in.Header.Get("From"))
	writeField(&b, AuthResultsHeader, w.AuthResults)
	writeField(&b, "Received", w.Received)
	if !in.Header.Has("Date") {
		writeField(&b, "Date", w.Now.UTC().Format(time.RFC1123Z))
	}
	for f := in.Header.Fields(); f.Next(); {
		if dropInbound(f.Key()) {
			continue
		}
		raw, err := f.Raw()
		if err != nil {
			continue
		}
		b.Write(raw)
	}
	b.WriteString("\r\n")
	b.Write(in.Body)
	return b.Bytes()
}

// writeField writes one field, its value on one line with control
// characters made spaces (values here are short, or already unfolded
// by the parser).
func writeField(b *bytes.Buffer, key, value string) {
	value = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, value)
	b.WriteString(key + ": " + value + "\r\n")
}

// Outbound is an outbound mail's header as the sender wrote it, read
// and checked (20.5).
type Outbound struct {
	Header  textproto.Header
	RelayTo []string // the legacy recipients, as addr-specs
	Carried string   // the value of the carried certificate field
	Display string   // the From display name, if any
}

// ParseOutbound reads an outbound mail's header section from r (at most
// mail.MaxHeaderSize bytes) and its relay recipients: 1 to
// MaxRelayRecipients addresses, none of domain or flowmail.invalid.
func ParseOutbound(r *bufio.Reader, domain string) (*Outbound, error) {
	peek, err := r.Peek(mail.MaxHeaderSize)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, err
	}
	if headerEnd(peek, mail.MaxHeaderSize) < 0 {
		return nil, fmt.Errorf("%w: no end of the header section in the first %d bytes", ErrMalformed, mail.MaxHeaderSize)
	}
	h, err := textproto.ReadHeader(r)
	if err != nil {
		return nil, fmt.Errorf("%w: the header does not parse: %v", ErrMalformed, err)
	}
	o := &Outbound{Header: h}
	mh := gomail.Header{Header: gomessage.Header{Header: h}}
	if from, err := mh.AddressList("From"); err == nil && len(from) == 1 && !strings.Contains(from[0].Name, "@") {
		o.Display = from[0].Name
	}
	if vals := h.Values(naming.CertHeader); len(vals) == 1 {
		o.Carried = vals[0]
	}
	seen := map[string]bool{}
	for _, v := range h.Values(mail.RelayHeader) {
		list, err := gomail.ParseAddressList(v)
		if err != nil {
			return nil, fmt.Errorf("%w: %s %q: %v", ErrRecipient, mail.RelayHeader, clip(v), err)
		}
		for _, a := range list {
			addr := strings.ToLower(a.Address)
			local, host, ok := strings.Cut(addr, "@")
			if !ok || local == "" || host == "" {
				return nil, fmt.Errorf("%w: %q", ErrRecipient, clip(a.Address))
			}
			if err := checkNotFlowmail(addr, domain); err != nil {
				return nil, fmt.Errorf("%w: %q is a flowmail address: send to it directly", ErrRecipient, clip(a.Address))
			}
			if !seen[addr] {
				seen[addr] = true
				o.RelayTo = append(o.RelayTo, a.Address)
			}
		}
	}
	switch {
	case len(o.RelayTo) == 0:
		return nil, ErrNoRelay
	case len(o.RelayTo) > MaxRelayRecipients:
		return nil, fmt.Errorf("%w: %d relay recipients, at most %d", ErrRecipient, len(o.RelayTo), MaxRelayRecipients)
	}
	return o, nil
}

// RelayHeaderBytes writes the header section to relay (20.5): From as
// the certified name, the sender's fields less dropOutbound's, and a
// Message-ID when it has none.
func (o *Outbound) RelayHeaderBytes(name, messageID string) []byte {
	var b bytes.Buffer
	from := (&gomail.Address{Name: o.Display, Address: name}).String()
	writeField(&b, "From", from)
	if !o.Header.Has("Message-Id") {
		writeField(&b, "Message-ID", messageID)
	}
	for f := o.Header.Fields(); f.Next(); {
		if dropOutbound(f.Key()) {
			continue
		}
		raw, err := f.Raw()
		if err != nil {
			continue
		}
		b.Write(raw)
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
