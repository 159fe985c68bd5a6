package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-smtp"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/clock"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
)

// Default listen addresses, those of the bridges people know.
const (
	DefaultIMAPAddr = "127.0.0.1:1143"
	DefaultSMTPAddr = "127.0.0.1:1025"
)

// OutboxDir is the outbox's directory inside Config.Dir.
const OutboxDir = "outbox"

// ErrNotLoopback refuses to listen beyond this machine unless asked to.
var ErrNotLoopback = errors.New("bridge: listen address is not a loopback address")

// Config is one bridge: one identity, its mail store and its network.
type Config struct {
	Identity *identity.Identity
	Network  delivery.Network
	// KeyLogs, if set, resolves recipients' and senders' key logs
	// (docs/PROTOCOL.md 15.5): RCPT TO a revoked, moved or forked
	// address is refused with the reason, mail is sealed to the
	// recipient's current key, and fetched mail from a revoked sender is
	// rejected. Without it, recipients' pubkey blocks are used as found.
	KeyLogs delivery.KeyLogs
	// Maildir is the mail store: INBOX at its root, the other folders in
	// Maildir++ subfolders. flowmail fetch delivers into the same one.
	Maildir string
	// StateDir holds the processed set shared with flowmail fetch.
	StateDir string
	// Dir holds the bridge's own files: login, certificate, outbox.
	Dir string
	// IMAPAddr and SMTPAddr are where to listen; empty means the defaults.
	// Port 0 picks a free port (tests), see Bridge.IMAPAddr.
	IMAPAddr, SMTPAddr string
	// AllowRemote allows listening on addresses other than loopback.
	// Clients there must then use STARTTLS before they log in.
	AllowRemote bool
	// Resolve turns a recipient that is not an address (a contact name,
	// user@domain) into an address; nil accepts addresses only.
	// Resolve returns a *LegacyError for an SMTP address (a domain
	// without a flowmail record, docs/PROTOCOL.md 20.5).
	Resolve func(ctx context.Context, name string) (block.ID, error)
	// Gateway, if set, finds the gateway that takes the user's mail to
	// legacy addresses, and the user's certificate the mail carries
	// (legacy.go). Asked at the first legacy RCPT TO of a transaction: an
	// error wrapping ErrNoGateway refuses the address with its text (say
	// what to configure), any other for now. Nil refuses legacy
	// addresses.
	Gateway func(ctx context.Context) (Gateway, error)
	// Clock is the time source; nil means the system clock.
	Clock clock.Clock
	// FetchInterval between fetches from the network; 0 means a minute.
	FetchInterval time.Duration
	// RetryAfter is the wait after a failed send, doubled for each
	// further failure; 0 means a minute.
	RetryAfter time.Duration
	// MaxAttempts sends of one mail before it bounces; 0 means 10.
	MaxAttempts int
	// RescanInterval is how often an idling client's folder is read again
	// for changes of other programs (mail the bridge fetches wakes idlers
	// at once); 0 means 30 s.
	RescanInterval time.Duration
	// Keep leaves fetched mail in the network.
	Keep bool
	// MaxMessageSize bounds submitted and appended messages; 0 means
	// mail.MaxMessageSize.
	MaxMessageSize int64
	// LookupTimeout bounds the key lookup of a recipient while the SMTP
	// client waits; 0 means a minute.
	LookupTimeout time.Duration
	// OnFetch, if set, is told the outcome of each fetch.
	OnFetch func(*delivery.FetchReport, error)
	// OnSend, if set, is told the outcome of each attempt to send a
	// queued mail: nil, or the error (bounced reports whether it gave up).
	OnSend func(id string, err error, bounced bool)
	// Logger receives the bridge's records; nil discards them.
	Logger *slog.Logger
}

// Bridge serves one identity's mail over IMAP and SMTP and keeps
// fetching it from the network.
type Bridge struct {
	cfg     Config
	me      *identity.Identity
	clock   clock.Clock
	log     *slog.Logger
	maxSize int64
	remote  bool

	store      *mailbox.Store
	queue      *mailbox.Queue
	codec      *mail.Codec // the sender's
	fetchCodec *mail.Codec
	checker    *checker
	limiter    *limiter
	tls        *tls.Config

	imapSrv         *imapserver.Server
	smtpSrv         *smtp.Server
	imapLn, smtpLn  net.Listener
	sessions        sessionGroup
	fetchNow        chan struct{}
	sendNow         chan struct{}
	stopping        chan struct{}
	ctx             context.Context
	cancel          context.CancelFunc
	wg              sync.WaitGroup
	closeOnce       sync.Once
	closeErr        error
	publishedPubkey time.Time
	sendMu          sync.Mutex // one sender at a time
}

// Start opens the mail store (which one bridge at a time may hold),
// listens, and starts fetching and sending. Close stops it all.
func Start(ctx context.Context, cfg Config) (_ *Bridge, err error) {
	if cfg.Identity == nil || cfg.Network == nil || cfg.Maildir == "" || cfg.StateDir == "" || cfg.Dir == "" {
		return nil, errors.New("bridge: Identity, Network, Maildir, StateDir and Dir are required")
	}
	b := &Bridge{
		cfg: cfg, me: cfg.Identity, clock: clock.Or(cfg.Clock), log: cfg.Logger,
		maxSize: cfg.MaxMessageSize, fetchNow: make(chan struct{}, 1), sendNow: make(chan struct{}, 1),
		stopping: make(chan struct{}),
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.maxSize <= 0 {
		b.maxSize = mail.MaxMessageSize
	}
	if b.cfg.IMAPAddr == "" {
		b.cfg.IMAPAddr = DefaultIMAPAddr
	}
	if b.cfg.SMTPAddr == "" {
		b.cfg.SMTPAddr = DefaultSMTPAddr
	}
	if err := CheckListen(cfg.AllowRemote, b.cfg.IMAPAddr, b.cfg.SMTPAddr); err != nil {
		return nil, err
	}
	var hosts []string
	for _, a := range []string{b.cfg.IMAPAddr, b.cfg.SMTPAddr} {
		host, loop, _ := checkListen(a)
		b.remote = b.remote || !loop
		hosts = append(hosts, host)
	}
	defer func() {
		if err != nil {
			b.cleanup()
		}
	}()
	if b.store, err = mailbox.OpenStore(cfg.Maildir, b.clock.Now); err != nil {
		return nil, err
	}
	for name := range specialUse {
		if !b.store.Exists(name) {
			if err := b.store.Create(name); err != nil {
				return nil, err
			}
		}
	}
	if _, err := b.store.Folder(mailbox.Inbox); err != nil {
		return nil, err
	}
	if b.queue, err = mailbox.OpenQueue(filepath.Join(cfg.Dir, OutboxDir)); err != nil {
		return nil, err
	}
	if b.tls, err = loadOrMakeCert(cfg.Dir, hosts, b.clock.Now()); err != nil {
		return nil, err
	}
	if b.codec, err = mail.NewCodec(); err != nil {
		return nil, err
	}
	if b.fetchCodec, err = mail.NewCodec(); err != nil {
		return nil, err
	}
	b.checker = &checker{dir: cfg.Dir, id: cfg.Identity}
	b.limiter = newLimiter(b.clock)
	if b.imapLn, err = net.Listen("tcp", b.cfg.IMAPAddr); err != nil {
		return nil, fmt.Errorf("bridge: IMAP: %w", err)
	}
	if b.smtpLn, err = net.Listen("tcp", b.cfg.SMTPAddr); err != nil {
		return nil, fmt.Errorf("bridge: SMTP: %w", err)
	}
	b.imapSrv = b.newIMAPServer()
	b.smtpSrv = b.newSMTPServer()
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b.ctx, b.cancel = runCtx, cancel
	b.wg.Add(4)
	go func() {
		defer b.wg.Done()
		if err := b.imapSrv.Serve(b.imapLn); err != nil {
			b.log.Warn("IMAP server stopped", "err", err)
		}
	}()
	go func() {
		defer b.wg.Done()
		if err := b.smtpSrv.Serve(b.smtpLn); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			b.log.Warn("SMTP server stopped", "err", err)
		}
	}()
	go func() { defer b.wg.Done(); b.fetchLoop(runCtx) }()
	go func() { defer b.wg.Done(); b.sendLoop(runCtx) }()
	return b, nil
}

// CheckListen refuses listen addresses beyond loopback unless
// allowRemote: a bridge is a door to the user's mail.
func CheckListen(allowRemote bool, addrs ...string) error {
	for _, a := range addrs {
		_, loop, err := checkListen(a)
		if err != nil {
			return err
		}
		if !loop && !allowRemote {
			return fmt.Errorf("%w: %s (allow it explicitly; clients must then use STARTTLS)", ErrNotLoopback, a)
		}
	}
	return nil
}

// checkListen parses a listen address and says whether it is loopback.
func checkListen(addr string) (host string, loopback bool, err error) {
	host, _, err = net.SplitHostPort(addr)
	if err != nil {
		return "", false, fmt.Errorf("bridge: listen address %q: %w", addr, err)
	}
	if host == "localhost" {
		return host, true, nil
	}
	ip := net.ParseIP(host)
	return host, ip != nil && ip.IsLoopback(), nil
}

// IMAPAddr is the address the IMAP server listens on.
func (b *Bridge) IMAPAddr() string { return b.imapLn.Addr().String() }

// SMTPAddr is the address the SMTP server listens on.
func (b *Bridge) SMTPAddr() string { return b.smtpLn.Addr().String() }

// Store is the mail store the bridge serves.
func (b *Bridge) Store() *mailbox.Store { return b.store }

// FetchNow asks for a fetch without waiting for the interval.
func (b *Bridge) FetchNow() {
	select {
	case b.fetchNow <- struct{}{}:
	default:
	}
}

func (b *Bridge) kickSender() {
	select {
	case b.sendNow <- struct{}{}:
	default:
	}
}

// Close stops serving, fetching and sending, waits for every goroutine
// and releases the mail store. Mail accepted and not yet sent stays in
// the outbox for the next start.
func (b *Bridge) Close() error {
	b.closeOnce.Do(func() {
		close(b.stopping)
		b.cancel()
		b.sessions.close()
		b.imapSrv.Close()
		b.smtpSrv.Close()
		b.sessions.wait()
		b.wg.Wait()
		b.closeErr = b.cleanup()
	})
	return b.closeErr
}

func (b *Bridge) cleanup() error {
	var errs []error
	for _, ln := range []net.Listener{b.imapLn, b.smtpLn} {
		if ln != nil {
			ln.Close()
		}
	}
	for _, c := range []*mail.Codec{b.codec, b.fetchCodec} {
		if c != nil {
			errs = append(errs, c.Close())
		}
	}
	if b.store != nil {
		errs = append(errs, b.store.Close())
	}
	return errors.Join(errs...)
}

// login checks a password, refusing sources (and the account) that gave
// too many wrong ones lately.
func (b *Bridge) login(source, user, password string) error {
	if d := b.limiter.wait(source); d > 0 {
		return fmt.Errorf("%w: try again in %s", ErrRateLimits, d.Round(time.Second))
	}
	if err := b.checker.check(user, password); err != nil {
		if errors.Is(err, ErrBadLogin) {
			b.limiter.fail(source)
		}
		b.log.Info("login refused", "source", source, "err", err)
		return err
	}
	return nil
}

// sessionGroup counts client sessions so Close can wait for them.
type sessionGroup struct {
	mu     sync.Mutex
	n      int
	closed bool
	zero   *sync.Cond
}

func (g *sessionGroup) start() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.n++
	return true
}

func (g *sessionGroup) done() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n--
	if g.n == 0 && g.zero != nil {
		g.zero.Broadcast()
	}
}

func (g *sessionGroup) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
}

func (g *sessionGroup) wait() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.zero == nil {
		g.zero = sync.NewCond(&g.mu)
	}
	for g.n > 0 {
		g.zero.Wait()
	}
}
