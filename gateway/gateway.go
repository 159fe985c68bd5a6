package gateway

import (
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/clock"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
	"github.com/flowmail/flowmail/naming"
	"github.com/flowmail/flowmail/record"
)

// Config sets up a gateway.
type Config struct {
	// Domain is the domain served, normalised (naming.NormaliseDomain).
	Domain string
	// Identity is the gateway's own flowmail identity: it signs inbound
	// mail, pays its proof of work, and receives outbound mail.
	Identity *identity.Identity
	// Certificate is the name certificate (record kind 3, its bytes) of
	// gateway@Domain for Identity, signed by the domain key; it is
	// carried in every mail the gateway sends.
	Certificate []byte
	// Network and KeyLogs reach the DHT (a node).
	Network delivery.Network
	KeyLogs delivery.KeyLogs
	// Names resolves user@Domain and checks carried certificates.
	Names *naming.Resolver
	// DNS answers the SPF, DKIM, DMARC and MX lookups.
	DNS Resolver
	// Listen is the inbound SMTP address; empty for none (outbound only).
	// Listener, if set, is used instead (its owner passes it on: Close
	// closes it).
	Listen   string
	Listener net.Listener
	// Hostname is the gateway's host name: its SMTP greeting, EHLO, and
	// the authserv-id of its Authentication-Results.
	Hostname string
	// TLS, if set, makes the inbound server offer STARTTLS (RFC 3207)
	// with its certificate.
	TLS *tls.Config
	// DKIMSelector and DKIMKey sign relayed mail (d=Domain). Required.
	DKIMSelector string
	DKIMKey      crypto.Signer
	// Smarthost (host:port), if set, takes every relayed mail; else the
	// recipients' MX hosts on MXPort (0: 25).
	Smarthost string
	MXPort    int
	// Spool is the gateway's directory: the outbound queue (a Maildir)
	// and its fetch state.
	Spool string
	// Clock is the time source; nil is the real clock.
	Clock clock.Clock
	// Log receives a line per mail; nil discards.
	Log *slog.Logger
	// FetchInterval is how often outbound mail is fetched; 0 is a minute.
	FetchInterval time.Duration
	// RetryAfter is the first retry delay of a relay that failed for
	// now (doubling per attempt); 0 is 5 minutes.
	RetryAfter time.Duration
	// MaxInboundSize overrides MaxInboundSize when smaller (tests).
	MaxInboundSize int64
	// OnInbound and OnRelay, if set, hear of each mail's outcome.
	OnInbound func(InboundReport)
	OnRelay   func(RelayReport)
	// OnPass, if set, hears of the end of each pass of the outbound loop
	// (a fetch, then every spooled mail due).
	OnPass func(*delivery.FetchReport, error)
}

// Gateway is a running gateway.
type Gateway struct {
	cfg    Config
	clock  clock.Clock
	log    *slog.Logger
	codec  *mail.Codec
	name   string // gateway@Domain
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	smtp   *smtp.Server
	ln     net.Listener
	state  *mailbox.State
	kick   chan struct{}
	active atomic.Int32
	// busy counts the messages being checked and sent, so Close waits
	// for them (go-smtp's Close does not wait for its handlers).
	mu      sync.Mutex
	closing bool
	busy    sync.WaitGroup
	inMail  *limiter // per envelope sender
	inSrc   *limiter // per client IP group
	outRcpt *limiter // per flowmail sender, in recipients
	retries map[string]*retry
}

// Start checks cfg, listens for SMTP (when cfg.Listen is set) and starts
// the outbound loop. Close stops both.
func Start(ctx context.Context, cfg Config) (_ *Gateway, err error) {
	if cfg.Identity == nil || cfg.Network == nil || cfg.Names == nil || cfg.DNS == nil || cfg.Spool == "" {
		return nil, errors.New("gateway: Identity, Network, Names, DNS and Spool are required")
	}
	if cfg.DKIMKey == nil || cfg.DKIMSelector == "" {
		return nil, errors.New("gateway: a DKIM selector and key are required")
	}
	dom, err := naming.NormaliseDomain(cfg.Domain)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	cfg.Domain = dom
	name := LocalPart + "@" + dom
	cert, err := record.Parse(cfg.Certificate)
	if err != nil {
		return nil, fmt.Errorf("gateway: the certificate: %w", err)
	}
	if cert.Kind != record.KindName || cert.Name.Name != name || cert.Name.Address != cfg.Identity.ID() {
		return nil, fmt.Errorf("gateway: the certificate must bind %s to %s", name, cfg.Identity.Address())
	}
	if cfg.Hostname == "" {
		cfg.Hostname = dom
	}
	if cfg.MaxInboundSize <= 0 || cfg.MaxInboundSize > MaxInboundSize {
		cfg.MaxInboundSize = MaxInboundSize
	}
	g := &Gateway{
		cfg: cfg, clock: clock.Or(cfg.Clock), log: cfg.Log, name: name,
		kick:    make(chan struct{}, 1),
		inMail:  newLimiter(InboundPerSender),
		inSrc:   newLimiter(InboundPerSource),
		outRcpt: newLimiter(OutboundPerSender),
		retries: map[string]*retry{},
	}
	if g.log == nil {
		g.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if g.codec, err = mail.NewCodec(); err != nil {
		return nil, err
	}
	for _, d := range []string{"new", "cur", "tmp"} {
		if err := os.MkdirAll(filepath.Join(g.maildir(), d), 0o700); err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	if g.state, err = mailbox.OpenState(filepath.Join(cfg.Spool, "state")); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if err := g.loadRetries(); err != nil {
		g.Close()
		return nil, err
	}
	g.ctx, g.cancel = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			g.Close()
		}
	}()
	g.ln = cfg.Listener
	if g.ln == nil && cfg.Listen != "" {
		if g.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	if g.ln != nil {
		g.smtp = g.newSMTPServer()
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			if err := g.smtp.Serve(g.ln); err != nil && !errors.Is(err, smtp.ErrServerClosed) && g.ctx.Err() == nil {
				g.log.Error("smtp server", "err", err)
			}
		}()
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.outboundLoop(g.ctx)
	}()
	return g, nil
}

// Addr is the inbound SMTP listener's address (nil without one).
func (g *Gateway) Addr() net.Addr {
	if g.ln == nil {
		return nil
	}
	return g.ln.Addr()
}

// Name is the gateway's name: gateway@Domain.
func (g *Gateway) Name() string { return g.name }

// FetchNow asks the outbound loop to fetch and relay at once.
func (g *Gateway) FetchNow() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// Close stops the SMTP server and the outbound loop and waits for them.
func (g *Gateway) Close() error {
	if g.cancel != nil {
		g.cancel()
	}
	g.mu.Lock()
	g.closing = true
	g.mu.Unlock()
	if g.smtp != nil {
		g.smtp.Close()
	} else if g.ln != nil {
		g.ln.Close()
	}
	g.wg.Wait()
	g.busy.Wait()
	if g.codec != nil {
		g.codec.Close()
	}
	if g.state != nil {
		return g.state.Close()
	}
	return nil
}

// startBusy registers a message in progress; false once closing.
func (g *Gateway) startBusy() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		return false
	}
	g.busy.Add(1)
	return true
}

func (g *Gateway) maildir() string { return filepath.Join(g.cfg.Spool, "outbound") }

// isTemporary tells a failure worth retrying (DNS, network) from a
// refusal.
func isTemporary(err error) bool {
	switch {
	case errors.Is(err, naming.ErrTimeout), errors.Is(err, naming.ErrDNS), errors.Is(err, naming.ErrNoResolver),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

func lower(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
