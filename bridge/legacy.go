package bridge

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-smtp"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
)

// Legacy recipients (docs/PROTOCOL.md 16.5, 20.5): a RCPT TO whose
// domain publishes no flowmail record is an SMTP address. The bridge
// sends it through the gateway of the user's own domain, as `flowmail
// send --as` does: the message carries the user's name certificate, the
// flowmail recipients get it as usual, and the gateway gets an outbox
// entry of its own whose message is the Flowmail-Relay-To field (every
// legacy recipient, blind ones too) before the same bytes. Which
// addresses are legacy and where the gateway is are the command's to
// say (Config.Resolve, Config.Gateway): they need DNS and the user's
// pins, which this package does not hold.

// ErrNoGateway: legacy addresses cannot be reached from this bridge (no
// certified name configured, or its domain runs no gateway). SMTP answers
// it with a permanent error at RCPT TO.
var ErrNoGateway = errors.New("bridge: no gateway for legacy (SMTP) addresses")

// MaxLegacyRecipients bounds the legacy recipients of one mail: the
// gateway's MaxRelayRecipients (docs/PROTOCOL.md 20.7), so what the
// bridge accepts the gateway takes.
const MaxLegacyRecipients = 64

// LegacyError is what Config.Resolve returns for a legacy address: its
// domain publishes no flowmail record.
type LegacyError struct {
	// Email is the address as the relay field names it (local@domain,
	// the domain normalised).
	Email string
	// Err says why it is legacy (the resolver's "no record").
	Err error
}

func (e *LegacyError) Error() string {
	return fmt.Sprintf("%s is a legacy (SMTP) address: %v", e.Email, e.Err)
}

func (e *LegacyError) Unwrap() error { return e.Err }

// Gateway is where a bridge sends legacy mail, as Config.Gateway finds
// it.
type Gateway struct {
	// Address is the gateway's identity: gateway@DOMAIN resolved (19.4).
	Address block.ID
	// Name is gateway@DOMAIN, for messages.
	Name string
	// Carried is the header field carrying the user's certificate for
	// NAME@DOMAIN (19.8, CRLF-ended, as naming.CarriedField writes it):
	// the first field of every message of a mail with legacy recipients,
	// as the gateway requires it.
	Carried string
}

// gateway asks Config.Gateway and looks the gateway's key up as any
// recipient's.
func (b *Bridge) gateway(ctx context.Context) (Gateway, error) {
	if b.cfg.Gateway == nil {
		return Gateway{}, fmt.Errorf("%w: this bridge has no gateway configured", ErrNoGateway)
	}
	gw, err := b.cfg.Gateway(ctx)
	if err != nil {
		return Gateway{}, err
	}
	if name, _, ok := strings.Cut(gw.Carried, ":"); !ok || strings.ContainsAny(name, " \r\n") || !strings.HasSuffix(gw.Carried, "\r\n") {
		return Gateway{}, fmt.Errorf("%w: the certificate field for %s is not one header field", ErrNoGateway, gw.Name)
	}
	if _, err := b.lookupKey(ctx, gw.Address); err != nil {
		return Gateway{}, fmt.Errorf("the gateway %s: %w", gw.Name, err)
	}
	return gw, nil
}

// rcptLegacy takes a legacy recipient for the gateway, found once per
// transaction (Reset forgets it, so a gateway set up meanwhile is seen).
func (s *smtpSession) rcptLegacy(ctx context.Context, le *LegacyError) error {
	mb := mail.Mailbox{Email: le.Email}
	// The relay field's own check of an address, before anything is
	// accepted for it.
	if err := mail.WriteRelayTo(io.Discard, []mail.Mailbox{mb}); err != nil {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: oneLine(err)}
	}
	for _, l := range s.legacy {
		if strings.EqualFold(l.Email, mb.Email) {
			return nil
		}
	}
	if len(s.legacy) >= MaxLegacyRecipients {
		return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3},
			Message: fmt.Sprintf("at most %d legacy (SMTP) recipients in one mail: send the others in another", MaxLegacyRecipients)}
	}
	if s.gw == nil {
		gw, err := s.b.gateway(ctx)
		what := mb.Email + " is a legacy (SMTP) address, sent through your domain's gateway: "
		switch {
		case err == nil:
		case errors.Is(err, ErrNoGateway), errors.Is(err, ErrNoKey), errors.Is(err, ErrRecipientEnded):
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: what + oneLine(err)}
		default:
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 3}, Message: what + "cannot find it now, try again: " + oneLine(err)}
		}
		s.gw = &gw
	}
	s.legacy = append(s.legacy, mb)
	return nil
}

// queueGatewayCopy files the gateway's mail: the relay field, then the
// message. The message is read from the outbox entry main when there is
// one (the flowmail recipients' copy, byte for byte), else from msg. It
// returns the entry and the relay field's length.
func (s *smtpSession) queueGatewayCopy(msg io.Reader, main *mailbox.Submission) (mailbox.Submission, int64, error) {
	var relay bytes.Buffer
	if err := mail.WriteRelayTo(&relay, s.legacy); err != nil {
		return mailbox.Submission{}, 0, err
	}
	n := int64(relay.Len())
	if main != nil {
		_, r, err := s.b.queue.Open(main.ID)
		if err != nil {
			return mailbox.Submission{}, 0, err
		}
		defer r.Close()
		msg = r
	}
	sub, err := s.b.queue.Add(io.MultiReader(&relay, msg), s.b.maxSize+n, mailbox.Submission{To: []block.ID{s.gw.Address}}, s.b.clock.Now())
	return sub, n, err
}

// relayRecipients reads the relay field of a queued gateway copy ("" for
// any other entry), for bounce notices.
func relayRecipients(msg []byte) string {
	if !bytes.HasPrefix(msg, []byte(mail.RelayHeader+":")) {
		return ""
	}
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(msg)))
	if err != nil {
		return ""
	}
	return strings.Join(strings.Fields(h.Get(mail.RelayHeader)), " ")
}

// gatewayWho names a gateway copy's recipient in a notice.
func gatewayWho(gw block.ID, relay string) string {
	return fmt.Sprintf("%s (the gateway, for %s)", identity.FormatAddress(gw), relay)
}
