package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/flowmail/flowmail/bridge"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
	"github.com/flowmail/flowmail/naming"
	"github.com/flowmail/flowmail/record"
)

// Legacy recipients: an address local@domain whose domain publishes no
// flowmail record is an SMTP address. send reaches it through the
// gateway of the sender's own domain (docs/PROTOCOL.md 20.5): a mail of
// its own to gateway@MYDOMAIN, carrying the sender's certificate (--as)
// and a Flowmail-Relay-To field naming every legacy recipient, Bcc ones
// included. The flowmail recipients get the message without that field,
// so they never learn the blind copies.

// gatewayLocal is the local part of a domain's gateway name (20.1).
const gatewayLocal = "gateway"

// legacyRecipients collects a send's legacy recipients.
type legacyRecipients struct {
	relay []mail.Mailbox // Flowmail-Relay-To: all of them, Bcc ones too
	seen  map[string]bool
	why   error // why the first one is legacy, for the advice without --as
}

// classify decides, for name that did not resolve with resolveErr,
// whether it is a legacy address: its domain publishes no flowmail
// record (naming.ErrNoRecord), and the name was never pinned as a
// flowmail name (a pinned name whose record vanished is an error, not a
// silent turn to SMTP). A local part that is no flowmail name (ErrName:
// "bob+news") is legacy too when its domain has no record. Otherwise it
// returns resolveErr with its advice.
func (l *legacyRecipients) classify(ctx context.Context, r *naming.Resolver, home, name string, resolveErr error) (mail.Mailbox, error) {
	name = strings.TrimSpace(name)
	local, domain, _ := strings.Cut(name, "@")
	why := resolveErr
	switch {
	case errors.Is(resolveErr, naming.ErrNoRecord):
		norm, err := record.Normalise(name)
		if err != nil {
			return mail.Mailbox{}, nameAdvice(resolveErr, name)
		}
		book, err := loadNames(home)
		if err != nil {
			return mail.Mailbox{}, err
		}
		if _, pinned := book.Names[norm]; pinned {
			return mail.Mailbox{}, fmt.Errorf("%s was a flowmail name you sent to before, and its domain publishes no flowmail record now: nothing was sent (%w). "+
				"Check --dns-server; if the domain left flowmail, remove the name from %s to send it through your gateway", name, resolveErr, namesPath(home))
		}
	case errors.Is(resolveErr, record.ErrName):
		d, err := naming.NormaliseDomain(domain)
		if err != nil {
			return mail.Mailbox{}, nameAdvice(resolveErr, name)
		}
		_, err = r.DNS.LookupDomain(ctx, d)
		if !errors.Is(err, naming.ErrNoRecord) {
			return mail.Mailbox{}, nameAdvice(resolveErr, name)
		}
		why = err
	default:
		return mail.Mailbox{}, nameAdvice(resolveErr, name)
	}
	d, err := naming.NormaliseDomain(domain)
	if err != nil {
		return mail.Mailbox{}, nameAdvice(resolveErr, name)
	}
	if l.why == nil {
		l.why = fmt.Errorf("%s: %w", name, why)
	}
	return mail.Mailbox{Email: local + "@" + d}, nil
}

// add notes a legacy recipient for the relay field; false when it was
// there already.
func (l *legacyRecipients) add(mb mail.Mailbox) bool {
	k := strings.ToLower(mb.Email)
	if l.seen[k] {
		return false
	}
	if l.seen == nil {
		l.seen = map[string]bool{}
	}
	l.seen[k] = true
	l.relay = append(l.relay, mb)
	return true
}

// emails lists the legacy recipients, for messages.
func (l *legacyRecipients) emails() string {
	s := make([]string, len(l.relay))
	for i, mb := range l.relay {
		s[i] = mb.Email
	}
	return strings.Join(s, ", ")
}

// gateway resolves the gateway that relays them: gateway@ the domain of
// the sender's certified name (as, from --as), resolved and pinned as
// any name.
func (l *legacyRecipients) gateway(ctx context.Context, w io.Writer, home string, r *naming.Resolver, as string) (mail.Mailbox, string, error) {
	if as == "" {
		return mail.Mailbox{}, "", fmt.Errorf("%w\n%s: no flowmail record, so legacy (SMTP) mail: it goes through your domain's gateway, "+
			"which needs your certified name: give --as NAME@YOURDOMAIN (or FLOWMAIL_AS). "+
			"If the domain should have a flowmail record, check the spelling and --dns-server", l.why, l.emails())
	}
	gw, name, err := resolveGateway(ctx, w, home, r, as)
	if errors.Is(err, naming.ErrNoCertificate) {
		return mail.Mailbox{}, "", fmt.Errorf("%w, and %s cannot be reached from this name: "+
			"ask its owner to run one (`flowmail server --gateway-listen`), or send --as a name of a domain that has one, or drop them from --to/--cc/--bcc",
			err, l.emails())
	}
	return gw, name, err
}

// resolveGateway resolves gateway@ the domain of the sender's name as
// (docs/PROTOCOL.md 20.5): as any name (19.4), pinned (19.5). A domain
// that certifies none is naming.ErrNoCertificate.
func resolveGateway(ctx context.Context, w io.Writer, home string, r *naming.Resolver, as string) (mail.Mailbox, string, error) {
	norm, err := record.Normalise(as)
	if err != nil {
		return mail.Mailbox{}, "", fmt.Errorf("--as: %w", nameAdvice(err, as))
	}
	_, domain, _ := strings.Cut(norm, "@")
	gw := gatewayLocal + "@" + domain
	b, err := resolveName(ctx, w, home, r, gw, time.Now())
	if errors.Is(err, naming.ErrNoCertificate) {
		return mail.Mailbox{}, "", fmt.Errorf("%s certifies no %s, so it runs no SMTP gateway (%w)", domain, gw, err)
	}
	if err != nil {
		return mail.Mailbox{}, "", fmt.Errorf("the gateway %s of --as %s: %w", gw, norm, nameAdvice(err, gw))
	}
	return mail.Mailbox{Name: b.Name, Address: b.Address()}, gw, nil
}

// errNotYours: --as names a name bound to another address.
var errNotYours = errors.New("the name is bound to another address")

// resolveAs resolves the sender's own certified name (--as) and refuses
// it unless it binds me (docs/PROTOCOL.md 19.8); whoami lists it then.
func resolveAs(ctx context.Context, w io.Writer, home string, r *naming.Resolver, as string, me *identity.Identity) (*naming.Binding, error) {
	b, err := r.Resolve(ctx, as, time.Now(), nil)
	if err != nil {
		return nil, fmt.Errorf("--as: %w", nameAdvice(err, as))
	}
	if b.Address() != me.ID() {
		return nil, fmt.Errorf("--as: %s is bound to %s, not to you (%s) (%w)", b.Name, identity.FormatAddress(b.Address()), identity.FormatAddress(me.ID()), errNotYours)
	}
	if err := checkedOwnName(home, b.Name, identity.FormatAddress(me.ID()), time.Now()); err != nil {
		fmt.Fprintf(w, "warning: %v (whoami will not list %s)\n", err, b.Name)
	}
	return b, nil
}

// bridgeLegacy is the bridge's test of a recipient name that did not
// resolve (resolveErr): a *bridge.LegacyError when it is a legacy
// address (the rules of classify), else resolveErr with its advice.
func bridgeLegacy(ctx context.Context, r *naming.Resolver, home, name string, resolveErr error) error {
	var l legacyRecipients
	mb, err := l.classify(ctx, r, home, name, resolveErr)
	if err != nil {
		return err
	}
	return &bridge.LegacyError{Email: mb.Email, Err: resolveErr}
}

// bridgeGateway finds, for the bridge, the gateway of the user's
// certified name as (--as of the bridge) and the certificate its mail
// carries, as send does for a legacy recipient. What only the user can
// change (no --as, a name that is not theirs, a domain without a
// gateway) wraps bridge.ErrNoGateway, so the client hears it as a
// permanent refusal with the advice; DNS and network trouble does not.
func bridgeGateway(ctx context.Context, w io.Writer, home string, r *naming.Resolver, as string, me *identity.Identity) (bridge.Gateway, error) {
	if as == "" {
		return bridge.Gateway{}, fmt.Errorf("%w: mail to them goes through your domain's gateway, which needs your certified name: "+
			"restart the bridge with --as NAME@YOURDOMAIN (or FLOWMAIL_AS)", bridge.ErrNoGateway)
	}
	b, err := resolveAs(ctx, w, home, r, as, me)
	if err == nil {
		var gw mail.Mailbox
		var name string
		if gw, name, err = resolveGateway(ctx, w, home, r, b.Name); err == nil {
			return bridge.Gateway{Address: gw.Address, Name: name, Carried: naming.CarriedField(b.Cert.Encode())}, nil
		}
		if errors.Is(err, naming.ErrNoCertificate) {
			err = fmt.Errorf("%w: ask its owner to run one (`flowmail server --gateway-listen`), or restart the bridge --as a name of a domain that has one", err)
		}
	}
	if transientName(err) {
		return bridge.Gateway{}, err
	}
	return bridge.Gateway{}, fmt.Errorf("%w: %w", bridge.ErrNoGateway, err)
}

// transientName tells resolution failures that may pass by themselves
// (DNS that does not answer now, the network) from those only a person
// can change.
func transientName(err error) bool {
	for _, permanent := range []error{
		errNotYours, errNoRecordDHT, record.ErrName, record.ErrRevoked, record.ErrExpired, record.ErrNotYetValid,
		record.ErrSignature, record.ErrWrongKey, record.ErrMismatch, naming.ErrNoRecord, naming.ErrNoCertificate,
		naming.ErrConflict, naming.ErrMalformed, naming.ErrVersion, naming.ErrNoResolver, naming.ErrKeyNotListed,
		naming.ErrAmbiguous, naming.ErrNoKeyLog, naming.ErrRebound,
	} {
		if errors.Is(err, permanent) {
			return false
		}
	}
	return true
}

// gatewayKey names the gateway's copy in the outbox: the message's key
// and the relay recipients (Bcc ones are not in the message's key).
func (l *legacyRecipients) gatewayKey(key string) string {
	h := sha256.New()
	fmt.Fprintf(h, "gateway\x00%s\x00", key)
	for _, mb := range l.relay {
		fmt.Fprintf(h, "%s\x00", mb.Email)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// send files the gateway's copy of the message under key and sends it
// to the gateway (keys), resuming as the message's own mail does.
func (l *legacyRecipients) send(ctx context.Context, s *streams, n delivery.Network, codec *mail.Codec, me *identity.Identity, home string,
	box mailbox.Outbox, key string, keys []*identity.PublicKey, gatewayName string) error {
	gwKey := l.gatewayKey(key)
	if _, err := l.addGatewayCopy(box, key, gwKey); err != nil {
		return err
	}
	m := mailSend{keys: keys, names: []string{gatewayName + " (for " + l.emails() + ")"}}
	if err := sendOne(ctx, s, n, codec, me, home, box.Message(gwKey), box.State(gwKey, "0"), m); err != nil {
		return err
	}
	return box.Remove(gwKey)
}

// addGatewayCopy files the gateway's copy under gwKey: the relay field,
// then the message filed under key, byte for byte. It reports whether
// it was there already (a resumed send).
func (l *legacyRecipients) addGatewayCopy(box mailbox.Outbox, key, gwKey string) (bool, error) {
	return box.Add(gwKey, func(w io.Writer) error {
		if err := mail.WriteRelayTo(w, l.relay); err != nil {
			return err
		}
		f, err := os.Open(box.Message(key))
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, f)
		return err
	})
}

// flowmailOnly drops the legacy mailboxes: the recipients of the
// message's own mail.
func flowmailOnly(mbs []mail.Mailbox) []mail.Mailbox {
	var out []mail.Mailbox
	for _, mb := range mbs {
		if !mb.Legacy() {
			out = append(out, mb)
		}
	}
	return out
}

// readdress puts the flowmail mailboxes of direct (flowmailOnly(all),
// perhaps re-addressed since) back into all, in order.
func readdress(all, direct []mail.Mailbox) {
	i := 0
	for j := range all {
		if !all[j].Legacy() {
			all[j] = direct[i]
			i++
		}
	}
}
