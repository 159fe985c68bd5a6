package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
	"github.com/flowmail/flowmail/record"
)

// InboundReport tells the outcome of one inbound message.
type InboundReport struct {
	MailFrom   string
	Recipients []string
	Verdict    string // the Authentication-Results value
	Index      int    // index blocks stored (one per recipient)
	Err        error  // nil: sent to the recipients over the network
}

// checkTimeout bounds the DNS work of one message's checks; lookupTimeout
// one recipient's resolution. Past them the client is told to retry.
const (
	checkTimeout  = time.Minute
	lookupTimeout = time.Minute
	// sendTimeout bounds storing one inbound mail in the network.
	sendTimeout = 10 * time.Minute
)

func (g *Gateway) newSMTPServer() *smtp.Server {
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		if g.active.Add(1) > MaxInboundSessions {
			g.active.Add(-1)
			return nil, &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "too many connections, try again later"}
		}
		return &session{g: g, remote: c.Conn().RemoteAddr(), helo: c.Hostname()}, nil
	}))
	s.Domain = g.cfg.Hostname
	s.MaxMessageBytes = g.cfg.MaxInboundSize
	s.MaxRecipients = mail.MaxRecipients
	s.ReadTimeout = 10 * time.Minute
	s.WriteTimeout = time.Minute
	s.ErrorLog = errorLog{g}
	s.TLSConfig = g.cfg.TLS
	return s
}

type errorLog struct{ g *Gateway }

func (l errorLog) Printf(format string, v ...interface{}) { l.g.log.Warn(fmt.Sprintf(format, v...)) }
func (l errorLog) Println(v ...interface{})               { l.g.log.Warn(fmt.Sprint(v...)) }

// session is one SMTP connection.
type session struct {
	g        *Gateway
	remote   net.Addr
	helo     string
	mailFrom string
	hasMail  bool
	rcpts    []string
	keys     []*identity.PublicKey
}

func smtpErr(code int, enh smtp.EnhancedCode, err error) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: oneLine(err)}
}

// Mail refuses a flowmail sender and counts the rate limits (20.3).
func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.Reset()
	if err := checkNotFlowmail(lower(from), s.g.cfg.Domain); err != nil {
		return smtpErr(550, smtp.EnhancedCode{5, 7, 1}, err)
	}
	now := s.g.clock.Now()
	src := ipGroup(s.remote)
	key := lower(from)
	if key == "" {
		key = "<>" + src
	}
	if ok, end := s.g.inSrc.take(src, 1, now); !ok {
		return smtpErr(451, smtp.EnhancedCode{4, 7, 1}, fmt.Errorf("%w: %d mails from %s per %v; retry after %s", ErrRateLimited, InboundPerSource, src, RateWindow, end.UTC().Format(time.RFC3339)))
	}
	if ok, end := s.g.inMail.take(key, 1, now); !ok {
		return smtpErr(451, smtp.EnhancedCode{4, 7, 1}, fmt.Errorf("%w: %d mails from %s per %v; retry after %s", ErrRateLimited, InboundPerSender, key, RateWindow, end.UTC().Format(time.RFC3339)))
	}
	s.mailFrom, s.hasMail = from, true
	return nil
}

// Rcpt takes only names of the domain that resolve to an address that
// takes mail (20.2).
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if !s.hasMail {
		return &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "MAIL first"}
	}
	ctx, cancel := context.WithTimeout(s.g.ctx, lookupTimeout)
	defer cancel()
	name, key, err := s.g.resolveUser(ctx, to)
	switch {
	case errors.Is(err, ErrNotServed):
		return smtpErr(550, smtp.EnhancedCode{5, 7, 1}, err)
	case err != nil && isTemporary(err):
		return smtpErr(451, smtp.EnhancedCode{4, 4, 3}, fmt.Errorf("cannot look the recipient up now, try again: %w", err))
	case err != nil:
		return smtpErr(550, smtp.EnhancedCode{5, 1, 1}, err)
	}
	for _, k := range s.keys {
		if k.Owner == key.Owner {
			return nil // the same user twice: one copy
		}
	}
	s.rcpts = append(s.rcpts, name)
	s.keys = append(s.keys, key)
	return nil
}

// resolveUser resolves a recipient to the key to seal to: a name of the
// domain (not the gateway's own), through DNS, its certificate and its
// key log (19.4, 15.5).
func (g *Gateway) resolveUser(ctx context.Context, to string) (string, *identity.PublicKey, error) {
	norm, err := record.Normalise(strings.Trim(strings.TrimSpace(to), "<>"))
	if err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrNotServed, err)
	}
	local, domain, _ := strings.Cut(norm, "@")
	if domain != g.cfg.Domain {
		return "", nil, fmt.Errorf("%w: %s is not of %s (no relaying)", ErrNotServed, norm, g.cfg.Domain)
	}
	if local == LocalPart {
		return "", nil, fmt.Errorf("%w: %s is the gateway itself", ErrUnknownUser, norm)
	}
	b, err := g.cfg.Names.Resolve(ctx, norm, g.clock.Now(), nil)
	if err != nil {
		if isTemporary(err) {
			return "", nil, err
		}
		return "", nil, fmt.Errorf("%w: %s: %w", ErrUnknownUser, norm, err)
	}
	k, _, err := delivery.ResolveRecipient(ctx, g.cfg.Network, g.cfg.KeyLogs, b.Address())
	if errors.Is(err, record.ErrRevoked) || errors.Is(err, record.ErrMoved) || errors.Is(err, record.ErrForked) {
		return "", nil, fmt.Errorf("%w: %s: %w", ErrUnknownUser, norm, err)
	}
	if err != nil {
		return "", nil, fmt.Errorf("looking up the key of %s: %w", norm, err)
	}
	return norm, k, nil
}

func (s *session) Reset() {
	s.mailFrom, s.hasMail, s.rcpts, s.keys = "", false, nil, nil
}

func (s *session) Logout() error {
	s.g.active.Add(-1)
	return nil
}

// Data reads the message (into memory only), checks it, and sends it
// over the network before answering (20.3, 20.4): a 250 means the mail
// is stored in the network, anything else that the client keeps it.
func (s *session) Data(r io.Reader) error {
	if len(s.rcpts) == 0 {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "no valid recipients"}
	}
	var buf bytes.Buffer
	_, err := io.Copy(&buf, io.LimitReader(mailbox.NewCRLFReader(r), s.g.cfg.MaxInboundSize+1))
	if errors.Is(err, smtp.ErrDataTooLarge) || int64(buf.Len()) > s.g.cfg.MaxInboundSize {
		return smtp.ErrDataTooLarge
	}
	if err != nil {
		return err
	}
	if !s.g.startBusy() {
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "the gateway is stopping"}
	}
	err = s.g.accept(s, buf.Bytes())
	s.g.busy.Done()
	rep := InboundReport{MailFrom: s.mailFrom, Recipients: s.rcpts, Err: err}
	if s.g.cfg.OnInbound != nil && err != nil {
		s.g.cfg.OnInbound(rep)
	}
	var se *smtp.SMTPError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se):
		return se
	case errors.Is(err, ErrFlowmailSender), errors.Is(err, ErrDMARCReject):
		return smtpErr(550, smtp.EnhancedCode{5, 7, 1}, err)
	case errors.Is(err, ErrFrom), errors.Is(err, ErrMalformed):
		return smtpErr(550, smtp.EnhancedCode{5, 6, 0}, err)
	default:
		s.g.log.Error("inbound mail not sent", "from", s.mailFrom, "err", err)
		return smtpErr(451, smtp.EnhancedCode{4, 3, 0}, fmt.Errorf("cannot store the mail in the network now, try again: %w", err))
	}
}

// accept checks one message and sends it to the session's recipients.
func (g *Gateway) accept(s *session, msg []byte) error {
	in, err := ParseInbound(msg, g.cfg.Domain)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(g.ctx, checkTimeout)
	v := check(ctx, g.cfg.DNS, remoteIP(s.remote), s.helo, s.mailFrom, in.FromHost, msg)
	cancel()
	ar := v.header(g.cfg.Hostname)
	if v.reject() {
		return fmt.Errorf("%w: %s", ErrDMARCReject, ar)
	}
	now := g.clock.Now()
	out := Wrap(in, WrapInput{
		Gateway: g.cfg.Identity.ID(), Certificate: g.cfg.Certificate, AuthResults: ar,
		Received: fmt.Sprintf("from %s (%s) by %s with ESMTP; %s", s.helo, remoteIP(s.remote), g.cfg.Hostname, now.UTC().Format(time.RFC1123Z)),
		Now:      now,
	})
	ctx, cancel = context.WithTimeout(g.ctx, sendTimeout)
	defer cancel()
	sent, err := delivery.Send(ctx, g.cfg.Network, g.codec, mail.BuildInput{
		Sender: g.cfg.Identity, Recipients: s.keys, Message: bytes.NewReader(out), Size: int64(len(out)), Now: now,
	}, delivery.SendOptions{})
	if err != nil {
		return err
	}
	g.log.Info("inbound mail sent", "from", s.mailFrom, "to", len(s.rcpts), "auth", ar)
	if g.cfg.OnInbound != nil {
		g.cfg.OnInbound(InboundReport{MailFrom: s.mailFrom, Recipients: s.rcpts, Verdict: ar, Index: len(sent.Index)})
	}
	return nil
}

func remoteIP(a net.Addr) net.IP {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP
	}
	host, _, _ := net.SplitHostPort(a.String())
	return net.ParseIP(host)
}
