package bridge

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	gomessage "github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
	"github.com/flowmail/flowmail/node"
	"github.com/flowmail/flowmail/record"
)

// Errors of resolving a recipient, wrapped with detail. SMTP answers them
// with a permanent error.
var (
	ErrUnknownRecipient = errors.New("bridge: unknown recipient")
	ErrNoKey            = errors.New("bridge: the recipient has no published key")
	// ErrRecipientEnded: the recipient's key log says it revoked its
	// key, moved to another address, or forked; nothing can be sealed to
	// it (the wrapped record error says which).
	ErrRecipientEnded = errors.New("bridge: the recipient's address no longer takes mail")
)

func (b *Bridge) newSMTPServer() *smtp.Server {
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		if !b.sessions.start() {
			return nil, &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "the bridge is stopping"}
		}
		return &smtpSession{b: b, remote: remoteHost(c.Conn().RemoteAddr())}, nil
	}))
	s.Domain = "localhost"
	s.MaxMessageBytes = b.maxSize
	s.MaxRecipients = mailbox.MaxQueueRecipients
	s.AllowInsecureAuth = !b.remote
	s.TLSConfig = b.tls
	s.ReadTimeout = 10 * time.Minute // a client writing a big mail slowly
	s.WriteTimeout = time.Minute
	s.ErrorLog = slogPrintf{b.log.With("server", "smtp")}
	return s
}

type smtpSession struct {
	b      *Bridge
	remote string
	authed bool
	rcpts  []recipient
	legacy []mail.Mailbox // through the gateway (legacy.go)
	gw     *Gateway       // found at the first legacy RCPT
}

type recipient struct {
	id    block.ID
	typed string
}

var _ smtp.AuthSession = (*smtpSession)(nil)

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *smtpSession) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(_, user, password string) error {
		if err := s.b.login(s.remote, user, password); err != nil {
			if errors.Is(err, ErrRateLimits) {
				return &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: err.Error()}
			}
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: err.Error()}
		}
		s.authed = true
		return nil
	}), nil
}

func (s *smtpSession) Mail(string, *smtp.MailOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	ctx, cancel := context.WithTimeout(s.b.runCtx(), s.b.lookupTimeout())
	defer cancel()
	id, err := s.b.resolve(ctx, to)
	if le := (*LegacyError)(nil); errors.As(err, &le) {
		return s.rcptLegacy(ctx, le)
	}
	if err == nil {
		_, err = s.b.lookupKey(ctx, id)
	}
	switch {
	case err == nil:
	case errors.Is(err, ErrUnknownRecipient), errors.Is(err, ErrNoKey), errors.Is(err, ErrRecipientEnded):
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: oneLine(err)}
	default:
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 3}, Message: "cannot look the recipient up now, try again: " + oneLine(err)}
	}
	for _, r := range s.rcpts {
		if r.id == id {
			return nil
		}
	}
	s.rcpts = append(s.rcpts, recipient{id: id, typed: to})
	return nil
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

func (s *smtpSession) Reset()        { s.rcpts, s.legacy, s.gw = nil, nil, nil }
func (s *smtpSession) Logout() error { s.b.sessions.done(); return nil }

// Data takes the message, checks its header, and streams it into the
// outbox (synced to disk before the client hears 250), then files a copy
// in Sent from there: a mail of any allowed size is never held whole.
// With legacy recipients the gateway's copy is a second entry, read
// back from the first; both are filed before 250, or neither.
func (s *smtpSession) Data(r io.Reader) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	if len(s.rcpts) == 0 && len(s.legacy) == 0 {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "no valid recipients"}
	}
	var carried string
	reserve := 0
	if len(s.legacy) > 0 {
		carried = s.gw.Carried
		var relay bytes.Buffer
		if err := mail.WriteRelayTo(&relay, s.legacy); err != nil {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: oneLine(err)}
		}
		reserve = relay.Len()
	}
	msg, visible, err := prepareMessage(r, s.b.me.ID(), func(addr string) (block.ID, error) {
		ctx, cancel := context.WithTimeout(s.b.runCtx(), s.b.lookupTimeout())
		defer cancel()
		return s.b.resolve(ctx, addr)
	}, carried, reserve)
	switch {
	case errors.Is(err, smtp.ErrDataTooLarge):
		return smtp.ErrDataTooLarge
	case err != nil:
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: oneLine(err)}
	}
	var sub mailbox.Submission
	for _, r := range s.rcpts {
		if visible[r.id] {
			sub.To = append(sub.To, r.id)
		} else {
			sub.Bcc = append(sub.Bcc, r.id)
		}
	}
	if len(sub.To) > mail.MaxRecipients {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 5, 3}, Message: fmt.Sprintf("at most %d To and Cc recipients in one mail", mail.MaxRecipients)}
	}
	var main *mailbox.Submission
	if len(s.rcpts) > 0 {
		sub, err = s.b.queue.Add(msg, s.b.maxSize, sub, s.b.clock.Now())
		if err != nil {
			return s.queueError(err)
		}
		main = &sub
		s.b.log.Info("mail queued", "id", sub.ID, "to", len(sub.To), "bcc", len(sub.Bcc), "bytes", sub.Size)
	}
	sent, skip := sub, int64(0)
	if len(s.legacy) > 0 {
		gsub, n, err := s.queueGatewayCopy(msg, main)
		if err != nil {
			if main != nil {
				// Not accepted, so not sent either: the client keeps the
				// mail. (A sender round that started on it in this
				// instant may have sent it already: a duplicate, never
				// a loss.)
				if rerr := s.b.queue.Remove(main.ID); rerr != nil {
					s.b.log.Error("removing a half-queued mail", "id", main.ID, "err", rerr)
				}
			}
			return s.queueError(err)
		}
		s.b.log.Info("mail queued for the gateway", "id", gsub.ID, "gateway", s.gw.Name, "legacy", len(s.legacy), "bytes", gsub.Size)
		if main == nil {
			sent, skip = gsub, n
		}
	}
	if err := s.fileSent(sent, skip); err != nil {
		s.b.log.Warn("filing a copy in Sent", "err", err)
	}
	s.b.kickSender()
	return nil
}

// queueError answers a failure to queue a mail.
func (s *smtpSession) queueError(err error) error {
	if errors.Is(err, smtp.ErrDataTooLarge) || errors.Is(err, mailbox.ErrTooBig) {
		return smtp.ErrDataTooLarge
	}
	s.b.log.Error("outbox", "err", err)
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "cannot queue the mail: " + oneLine(err)}
}

// fileSent copies a queued message into Sent, less its first skip bytes
// (a gateway copy's relay field).
func (s *smtpSession) fileSent(sub mailbox.Submission, skip int64) error {
	sent, err := s.b.store.Folder("Sent")
	if err != nil {
		return err
	}
	_, r, err := s.b.queue.Open(sub.ID)
	if err != nil {
		return err
	}
	defer r.Close()
	if _, err := io.CopyN(io.Discard, r, skip); err != nil {
		return err
	}
	_, err = sent.Append(r, mailbox.FlagSeen, sub.Accepted, s.b.maxSize)
	return err
}

// prepareMessage reads a submitted message's header section (at most
// mail.MaxHeaderSize bytes) and returns the message as it is to be
// signed: CRLF line ends, no Bcc header, no relay field (the gateway's
// copy gets the bridge's own), a From that names the sender, and carried
// (a header field, or "") first in place of any the client wrote; the
// body is still read from r as the result is read. It also returns the
// addresses the To and Cc headers show, as resolve reads them (a
// contact's name at flowmail.invalid, say). reserve is room the header
// section must leave within MaxHeaderSize (for the relay field).
func prepareMessage(r io.Reader, me block.ID, resolve func(string) (block.ID, error), carried string, reserve int) (io.Reader, map[block.ID]bool, error) {
	// The header section must end within MaxHeaderSize bytes (as
	// mail.Build checks): looked for before parsing, so the parser never
	// reads past it.
	br := bufio.NewReaderSize(mailbox.NewCRLFReader(r), mail.MaxHeaderSize)
	peek, err := br.Peek(mail.MaxHeaderSize)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, err // go-smtp's ErrDataTooLarge, or the connection
	}
	if len(peek) == mail.MaxHeaderSize && !bytes.HasPrefix(peek, []byte("\r\n")) && !bytes.Contains(peek, []byte("\r\n\r\n")) {
		return nil, nil, fmt.Errorf("%w: no end of the header section in the first %d bytes", mail.ErrHeaderSize, mail.MaxHeaderSize)
	}
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return nil, nil, fmt.Errorf("the message header does not parse: %v", err)
	}
	h.Del("Bcc")
	// A relay field in the message flowmail recipients get would show
	// them the blind copies (docs/PROTOCOL.md 20.5).
	h.Del(mail.RelayHeader)
	if carried != "" {
		name, _, _ := strings.Cut(carried, ":")
		h.Del(name)
	}
	if !h.Has("Date") {
		return nil, nil, errors.New("the message has no Date header")
	}
	var head bytes.Buffer
	head.WriteString(carried)
	if err := textproto.WriteHeader(&head, h); err != nil {
		return nil, nil, err
	}
	if head.Len()+reserve > mail.MaxHeaderSize {
		return nil, nil, fmt.Errorf("%w: the header section with the bridge's fields is %d bytes, at most %d", mail.ErrHeaderSize, head.Len()+reserve, mail.MaxHeaderSize)
	}
	if err := mail.CheckFrom(head.Bytes(), me); err != nil {
		return nil, nil, fmt.Errorf("%w (set your client's address to %s)", err, mail.HeaderAddress(me))
	}
	visible := map[block.ID]bool{}
	mh := gomail.Header{Header: gomessage.Header{Header: h}}
	for _, key := range []string{"To", "Cc"} {
		list, _ := mh.AddressList(key)
		for _, a := range list {
			if id, err := resolve(a.Address); err == nil {
				visible[id] = true
			}
		}
	}
	return io.MultiReader(&head, br), visible, nil
}

// resolve turns a recipient as a client gives it into an address:
// fm1…, fm1…@flowmail.invalid, a name at flowmail.invalid or bare
// (Config.Resolve: contacts), anything else through Config.Resolve too
// (user@domain: its name, or a *LegacyError when it is an SMTP address).
func (b *Bridge) resolve(ctx context.Context, to string) (block.ID, error) {
	to = strings.TrimSpace(strings.Trim(strings.TrimSpace(to), "<>"))
	local, domain, hasDomain := strings.Cut(to, "@")
	if !hasDomain || strings.EqualFold(domain, mail.MailDomain) {
		if strings.HasPrefix(strings.ToLower(local), identity.AddressPrefix+"1") {
			id, err := identity.ParseAddress(local)
			if err != nil {
				return block.ID{}, fmt.Errorf("%w: %v", ErrUnknownRecipient, err)
			}
			return id, nil
		}
		to = local
	}
	if b.cfg.Resolve == nil {
		return block.ID{}, fmt.Errorf("%w: %q is not a flowmail address (fm1…@%s)", ErrUnknownRecipient, to, mail.MailDomain)
	}
	id, err := b.cfg.Resolve(ctx, to)
	if le := (*LegacyError)(nil); errors.As(err, &le) {
		return block.ID{}, err
	}
	if err != nil {
		return block.ID{}, fmt.Errorf("%w: %v", ErrUnknownRecipient, err)
	}
	return id, nil
}

// lookupKey finds the key to seal to: through the recipient's key log
// when KeyLogs is set (its current key; a revoked, moved or forked
// address is ErrRecipientEnded), else its pubkey block as found.
func (b *Bridge) lookupKey(ctx context.Context, id block.ID) (*identity.PublicKey, error) {
	var k *identity.PublicKey
	var err error
	if b.cfg.KeyLogs != nil {
		k, _, err = delivery.ResolveRecipient(ctx, b.cfg.Network, b.cfg.KeyLogs, id)
		if errors.Is(err, record.ErrRevoked) || errors.Is(err, record.ErrMoved) || errors.Is(err, record.ErrForked) {
			return nil, fmt.Errorf("%w: %w", ErrRecipientEnded, err)
		}
	} else {
		k, err = delivery.LookupPubkey(ctx, b.cfg.Network, id)
	}
	if errors.Is(err, node.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s has no published key in the network (ask them to run `flowmail publish` or `flowmail fetch` once)", ErrNoKey, identity.FormatAddress(id))
	}
	return k, err
}

func (b *Bridge) lookupTimeout() time.Duration {
	if b.cfg.LookupTimeout > 0 {
		return b.cfg.LookupTimeout
	}
	return time.Minute
}
