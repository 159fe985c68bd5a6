package mail

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

// MailDomain is the domain of flowmail addresses in RFC 5322 headers
// (spec 3): reserved, so such an address can never route to SMTP.
const MailDomain = "flowmail.invalid"

// Mailbox is one address of a mail header, with an optional display name:
// a flowmail Address, or, when Email is set, a legacy RFC 5322 addr-spec
// (local@domain of a domain without flowmail, spec 9.1), reached through
// a gateway (spec 20.5) and written as is.
type Mailbox struct {
	Name    string
	Address block.ID
	Email   string
}

// Legacy tells whether the mailbox is a legacy (SMTP) address.
func (m Mailbox) Legacy() bool { return m.Email != "" }

// ErrLegacyAddress: a legacy address that is not one plain addr-spec, or
// that names flowmail.invalid, or one where the message cannot hold it.
var ErrLegacyAddress = errors.New("mail: invalid legacy address")

// checkLegacy checks a legacy mailbox's Email: one addr-spec that
// parses as RFC 5322, local@domain, not at flowmail.invalid.
func (m Mailbox) checkLegacy() error {
	a, err := gomail.ParseAddress("<" + m.Email + ">")
	if err != nil || a.Address != m.Email || strings.ContainsAny(m.Email, "<>,\r\n") {
		return fmt.Errorf("%w: %q is not one address (local@domain)", ErrLegacyAddress, m.Email)
	}
	local, domain, ok := strings.Cut(m.Email, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") {
		return fmt.Errorf("%w: %q is not local@domain", ErrLegacyAddress, m.Email)
	}
	if strings.EqualFold(domain, MailDomain) {
		return fmt.Errorf("%w: %q is at %s: give the flowmail address", ErrLegacyAddress, m.Email, MailDomain)
	}
	return nil
}

// HeaderAddress returns the address as it appears in headers:
// fm1…@flowmail.invalid.
func HeaderAddress(id block.ID) string { return identity.FormatAddress(id) + "@" + MailDomain }

// String formats the mailbox as RFC 5322 does, quoting or encoding the name.
func (m Mailbox) String() string {
	if m.Legacy() {
		return (&gomail.Address{Name: m.Name, Address: m.Email}).String()
	}
	return (&gomail.Address{Name: m.Name, Address: HeaderAddress(m.Address)}).String()
}

// Attachment is a file carried in a mail: Data, or what Reader yields
// when it is set (read once, in pieces).
type Attachment struct {
	Name        string // file name shown to the recipient
	ContentType string // MIME type; empty means application/octet-stream
	Data        []byte
	Reader      io.Reader
}

// Message is a mail to compose.
type Message struct {
	From        Mailbox
	To, Cc      []Mailbox
	Subject     string
	Text        string // the body, UTF-8 plain text
	Attachments []Attachment
	Date        time.Time
	// MessageID is the Message-ID without angle brackets; empty means a
	// random one at flowmail.invalid.
	MessageID string
}

// Compose renders m as RFC 5322 with MIME: a single text/plain part, or
// multipart/mixed with the text first when there are attachments, which
// travel base64-encoded. Randomness (Message-ID, MIME boundary) comes from
// rand, so the same inputs give the same bytes.
func Compose(m *Message, rand io.Reader) ([]byte, error) {
	var out bytes.Buffer
	if err := WriteMessage(&out, m, rand); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// WriteMessage is Compose into w, streaming: attachments given as
// Readers are read once, in pieces, and never held whole.
func WriteMessage(out io.Writer, m *Message, rand io.Reader) error {
	if m.Date.IsZero() {
		return errors.New("mail: compose: the message has no date")
	}
	if len(m.To)+len(m.Cc) == 0 {
		return errors.New("mail: compose: the message has no recipient (To or Cc)")
	}
	if !utf8.ValidString(m.Text) || !utf8.ValidString(m.Subject) {
		return errors.New("mail: compose: subject and text must be UTF-8")
	}
	if m.From.Legacy() {
		return fmt.Errorf("%w: compose: From must be the sender's flowmail address, not %q", ErrLegacyAddress, m.From.Email)
	}
	for _, mb := range slices.Concat(m.To, m.Cc) {
		if mb.Legacy() {
			if err := mb.checkLegacy(); err != nil {
				return fmt.Errorf("mail: compose: %w", err)
			}
		}
	}
	msgID := m.MessageID
	if msgID == "" {
		var r [16]byte
		if _, err := io.ReadFull(rand, r[:]); err != nil {
			return fmt.Errorf("mail: compose: reading randomness: %w", err)
		}
		msgID = hex.EncodeToString(r[:]) + "@" + MailDomain
	}

	// WriteHeader emits fields last-added first, so they are added in
	// reverse of the order a reader sees: From first, MIME fields last.
	var h gomail.Header
	h.Set("MIME-Version", "1.0")
	if len(m.Attachments) == 0 {
		h.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
		h.Set("Content-Transfer-Encoding", "quoted-printable")
	} else {
		var b [18]byte
		if _, err := io.ReadFull(rand, b[:]); err != nil {
			return fmt.Errorf("mail: compose: reading randomness: %w", err)
		}
		// '=' followed by '_' occurs in neither base64 nor quoted-printable,
		// so the boundary cannot collide with encoded content.
		h.SetContentType("multipart/mixed", map[string]string{"boundary": "=_" + hex.EncodeToString(b[:])})
	}
	h.SetMessageID(msgID)
	h.SetDate(m.Date)
	h.SetSubject(m.Subject)
	if len(m.Cc) > 0 {
		h.Set("Cc", joinMailboxes(m.Cc))
	}
	if len(m.To) > 0 {
		h.Set("To", joinMailboxes(m.To))
	}
	h.Set("From", m.From.String())

	if len(m.Attachments) == 0 {
		pw, err := message.CreateWriter(out, h.Header)
		return writeBody(pw, err, strings.NewReader(m.Text))
	}
	mw, err := message.CreateWriter(out, h.Header)
	if err != nil {
		return fmt.Errorf("mail: compose: %w", err)
	}
	var text message.Header
	text.Set("Content-Transfer-Encoding", "quoted-printable")
	text.Set("Content-Disposition", "inline")
	text.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
	pw, err := mw.CreatePart(text)
	if err := writeBody(pw, err, strings.NewReader(m.Text)); err != nil {
		return err
	}
	for _, a := range m.Attachments {
		ct := a.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || strings.HasPrefix(mt, "multipart/") {
			return fmt.Errorf("mail: compose: attachment %q: content type %q is not a single-part MIME type", a.Name, ct)
		}
		var ah gomail.AttachmentHeader
		ah.Set("Content-Transfer-Encoding", "base64")
		ah.SetFilename(a.Name) // Content-Disposition: attachment; filename=…
		if a.Name != "" {
			params["name"] = a.Name
		}
		ah.SetContentType(mt, params)
		pw, err := mw.CreatePart(ah.Header)
		data := a.Reader
		if data == nil {
			data = bytes.NewReader(a.Data)
		}
		if err := writeBody(pw, err, data); err != nil {
			return err
		}
	}
	if err := mw.Close(); err != nil {
		return fmt.Errorf("mail: compose: %w", err)
	}
	return nil
}

// RelayHeader is the field that lists, for a gateway, the legacy
// recipients of a mail to relay by SMTP (spec 20.5), Bcc ones included.
const RelayHeader = "Flowmail-Relay-To"

// WriteRelayTo writes the Flowmail-Relay-To field naming to (legacy
// mailboxes only, at least one), folded, CRLF-ended: a header field a
// writer puts before a composed message's others to make the mail for a
// gateway (spec 20.5).
func WriteRelayTo(w io.Writer, to []Mailbox) error {
	if len(to) == 0 {
		return fmt.Errorf("%w: no relay recipient", ErrLegacyAddress)
	}
	for _, mb := range to {
		if !mb.Legacy() {
			return fmt.Errorf("%w: %s is a flowmail address: send to it directly, not through a gateway", ErrLegacyAddress, identity.FormatAddress(mb.Address))
		}
		if err := mb.checkLegacy(); err != nil {
			return err
		}
	}
	var h textproto.Header
	h.Set(RelayHeader, joinMailboxes(to))
	var b bytes.Buffer
	if err := textproto.WriteHeader(&b, h); err != nil {
		return fmt.Errorf("mail: writing %s: %w", RelayHeader, err)
	}
	// WriteHeader ends the section with an empty line; this is one field.
	_, err := w.Write(b.Bytes()[:b.Len()-2])
	return err
}

func joinMailboxes(ms []Mailbox) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = m.String()
	}
	return strings.Join(s, ", ")
}

// writeBody copies one part's body through pw, which CreateWriter or
// CreatePart returned along with err, and closes it.
func writeBody(pw *message.Writer, err error, body io.Reader) error {
	if err == nil {
		_, err = io.Copy(pw, body)
	}
	if err == nil {
		err = pw.Close()
	}
	if err != nil {
		return fmt.Errorf("mail: compose: %w", err)
	}
	return nil
}

// Subject returns the decoded Subject of an RFC 5322 message, or "" if
// it has none that parses.
func Subject(msg []byte) string {
	hdr, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(msg)))
	if err != nil {
		return ""
	}
	h := gomail.Header{Header: message.Header{Header: hdr}}
	s, _ := h.Subject()
	return s
}

// CheckFrom checks that an RFC 5322 message has exactly one From header
// naming exactly one mailbox, and that the mailbox is signer's address at
// flowmail.invalid (spec 9.1, 9.2). Senders check raw messages (from an
// SMTP bridge, say) with it before building; recipients check every mail.
func CheckFrom(msg []byte, signer block.ID) error {
	hdr, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(msg)))
	if err != nil {
		return fmt.Errorf("%w: the message header does not parse: %v", ErrFromHeader, err)
	}
	h := gomail.Header{Header: message.Header{Header: hdr}}
	switch n := len(h.Values("From")); n {
	case 0:
		return fmt.Errorf("%w: the message has no From header", ErrFromHeader)
	case 1:
	default:
		return fmt.Errorf("%w: the message has %d From headers", ErrFromHeader, n)
	}
	from, err := h.AddressList("From")
	if err != nil {
		return fmt.Errorf("%w: From header %q does not parse: %v", ErrFromHeader, h.Get("From"), err)
	}
	if len(from) != 1 {
		return fmt.Errorf("%w: From header names %d mailboxes, want exactly one", ErrFromHeader, len(from))
	}
	claimed, err := ParseHeaderAddress(from[0].Address)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrFromHeader, err)
	}
	if claimed != signer {
		return fmt.Errorf("%w: mail claims to be from %s but is signed by %s",
			ErrFromMismatch, identity.FormatAddress(claimed), identity.FormatAddress(signer))
	}
	return nil
}

// ParseHeaderAddress parses fm1…@flowmail.invalid as a header carries it.
func ParseHeaderAddress(s string) (block.ID, error) {
	at := strings.LastIndexByte(s, '@')
	if at < 0 || !strings.EqualFold(s[at+1:], MailDomain) {
		return block.ID{}, fmt.Errorf("%q is not a flowmail address (fm1…@%s)", s, MailDomain)
	}
	id, err := identity.ParseAddress(s[:at])
	if err != nil {
		return block.ID{}, fmt.Errorf("%q: %w", s, err)
	}
	return id, nil
}
