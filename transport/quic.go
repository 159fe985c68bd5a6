package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

// labelStatelessReset derives the QUIC stateless reset key from the
// node's signing key, so a restarted node can tell peers at once that
// their old connection is gone. It never leaves the node.
const labelStatelessReset = "flowmail/v1 stateless reset"

// maxHelloSize bounds the HELLO frame a reader accepts.
const maxHelloSize = 3 + MaxNetworkName + block.PubkeySize + 1 + MaxAdvertised*(1+16+2)

// Flow-control windows: a stream can hold a whole frame, and a connection
// buffers a few of them, so unread data from a peer stays bounded.
const (
	streamReceiveWindow     = 1 << 20
	connectionReceiveWindow = 4 << 20
)

// QUICConfig configures a QUIC transport. Zero durations and limits take
// the defaults of docs/PROTOCOL.md.
type QUICConfig struct {
	// Identity is the node's key: its certificate and HELLO.
	Identity *identity.Identity
	// Network is the network name peers must share (1 to MaxNetworkName
	// bytes), e.g. "flowmail".
	Network string
	// ListenAddr is the UDP address to listen and dial from, such as
	// "127.0.0.1:0". Ignored when PacketConn is set.
	ListenAddr string
	// PacketConn, when set, is the socket to use instead; Close leaves it
	// open for its owner.
	PacketConn net.PacketConn
	// Handler answers requests; it may also be set later with SetHandler.
	// Until one is set, request streams are reset as overloaded.
	Handler Handler
	// Client sets the client-mode flag in our HELLO.
	Client bool
	// Advertised are the addresses our HELLO says we are reachable at.
	Advertised []netip.AddrPort
	// Logger receives refused peers (warn) and stream errors (debug); nil
	// discards.
	Logger *slog.Logger
	// Observer, when set, is told about requests and connections.
	Observer Observer

	DialTimeout      time.Duration // QUIC and TLS handshake of a dial (5 s)
	HandshakeTimeout time.Duration // HELLO exchange, and an incoming QUIC handshake (5 s)
	RequestTimeout   time.Duration // one request and its response; a handler's context (10 s)
	IdleTimeout      time.Duration // a connection without traffic closes (60 s)
	// KeepAlivePeriod, when set, keeps connections open by pinging;
	// zero lets idle connections close, which frees them for others.
	KeepAlivePeriod time.Duration

	MaxConns          int // verified connections plus our dials in progress (MaxConns)
	MaxStreamsPerConn int // concurrent incoming streams per connection (MaxStreamsPerConn)
	MaxHandlers       int // handlers running at once; more streams are reset as overloaded (DefaultMaxHandlers)
	// MaxInbound is how many of MaxConns peers that dialed us may hold;
	// the rest stays for our dials. Zero: MaxConns less a quarter (at
	// least one); it must be below MaxConns.
	MaxInbound int
	// MaxHandshakes bounds incoming connections still in their HELLO
	// exchange, beside MaxConns (MaxHandshakes).
	MaxHandshakes int
	// MaxInboundPerIPGroup bounds incoming connections from one IP group
	// (/24 for IPv4, /48 for IPv6; see IPGroup): zero means
	// MaxInboundPerIPGroup, negative no limit. Loopback peers are exempt
	// unless LimitLoopback is set, since testnets run every node on one
	// loopback address.
	MaxInboundPerIPGroup int
	LimitLoopback        bool
}

// QUIC is the transport over QUIC: one UDP socket for listening and
// dialing, mutual TLS 1.3 on the nodes' Ed25519 keys, the HELLO exchange
// that binds a connection to a node ID, and one stream per request.
type QUIC struct {
	cfg       QUICConfig
	id        block.ID
	log       *slog.Logger
	hello     []byte
	clientTLS *tls.Config
	qconf     *quic.Config
	udp       net.PacketConn
	ownUDP    bool
	tr        *quic.Transport
	ln        *quic.Listener
	local     netip.AddrPort
	handler   atomic.Pointer[Handler]
	slots     chan struct{} // one per running handler
	marks     atomic.Uint64 // advances at each request's start and end: the order of connections' last use

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the transport starts

	mu     sync.Mutex
	closed bool
	budget *budget
	conns  map[*quic.Conn]*slot // every open connection, for Close (retired ones too)
	byID   map[block.ID]*peerConn
	byAddr map[netip.AddrPort]*peerConn
	dials  map[dialKey]*dialCall
}

var _ Transport = (*QUIC)(nil)

// peerConn is a connection whose HELLO exchange succeeded.
type peerConn struct {
	qc   *quic.Conn
	peer Peer
	dir  Direction
	slot *slot
	act  *activity
}

// dialKey names one dial in flight: by ID when the caller knows it, else
// by address.
type dialKey struct {
	id   block.ID
	addr netip.AddrPort
}

// dialCall is one dial that every request for the same peer waits on.
type dialCall struct {
	done chan struct{}
	pc   *peerConn
	err  error
}

// ListenQUIC opens the socket and starts accepting connections.
func ListenQUIC(ctx context.Context, cfg QUICConfig) (*QUIC, error) {
	if cfg.Identity == nil {
		return nil, errors.New("transport: QUICConfig.Identity is nil")
	}
	if err := checkNetworkName(cfg.Network); err != nil {
		return nil, fmt.Errorf("QUICConfig.Network: %w", err)
	}
	setDefault(&cfg.DialTimeout, DefaultDialTimeout)
	setDefault(&cfg.HandshakeTimeout, DefaultHandshakeTimeout)
	setDefault(&cfg.RequestTimeout, DefaultRequestTimeout)
	setDefault(&cfg.IdleTimeout, DefaultIdleTimeout)
	setDefault(&cfg.MaxConns, MaxConns)
	setDefault(&cfg.MaxStreamsPerConn, MaxStreamsPerConn)
	setDefault(&cfg.MaxHandlers, DefaultMaxHandlers)
	setDefault(&cfg.MaxHandshakes, MaxHandshakes)
	if cfg.MaxInbound == 0 {
		cfg.MaxInbound = cfg.MaxConns - max(1, cfg.MaxConns/4)
	}
	if cfg.MaxInbound < 0 || cfg.MaxInbound >= cfg.MaxConns {
		return nil, fmt.Errorf("transport: QUICConfig.MaxInbound is %d, want 0 to %d so that dials keep a share of MaxConns (%d)", cfg.MaxInbound, cfg.MaxConns-1, cfg.MaxConns)
	}
	if cfg.MaxInboundPerIPGroup == 0 {
		cfg.MaxInboundPerIPGroup = MaxInboundPerIPGroup
	}
	for _, a := range cfg.Advertised {
		if err := checkAdvertised(a); err != nil {
			return nil, fmt.Errorf("transport: QUICConfig.Advertised: %w", err)
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hello, err := (&Hello{Client: cfg.Client, Network: cfg.Network, Pubkey: cfg.Identity.Public().Block, Addrs: cfg.Advertised}).Append(nil)
	if err != nil {
		return nil, fmt.Errorf("transport: our HELLO: %w", err)
	}
	cert, err := certificate(cfg.Identity.SigningKey())
	if err != nil {
		return nil, err
	}
	serverTLS, clientTLS := tlsConfigs(cert)

	udp, ownUDP := cfg.PacketConn, false
	if udp == nil {
		if cfg.ListenAddr == "" {
			return nil, errors.New("transport: QUICConfig needs ListenAddr or PacketConn")
		}
		var lc net.ListenConfig
		if udp, err = lc.ListenPacket(ctx, "udp", cfg.ListenAddr); err != nil {
			return nil, fmt.Errorf("transport: %w", err)
		}
		ownUDP = true
	}
	local, err := addrPortOf(udp.LocalAddr())
	if err != nil {
		if ownUDP {
			udp.Close()
		}
		return nil, err
	}
	resetKey := quic.StatelessResetKey(block.LabeledHash(labelStatelessReset, cfg.Identity.SigningKey().Seed()))
	tr := &quic.Transport{Conn: udp, StatelessResetKey: &resetKey}
	qconf := &quic.Config{
		Versions:                       []quic.Version{quic.Version1},
		HandshakeIdleTimeout:           cfg.HandshakeTimeout,
		MaxIdleTimeout:                 cfg.IdleTimeout,
		KeepAlivePeriod:                cfg.KeepAlivePeriod,
		MaxIncomingStreams:             int64(cfg.MaxStreamsPerConn),
		MaxIncomingUniStreams:          -1,
		MaxStreamReceiveWindow:         streamReceiveWindow,
		MaxConnectionReceiveWindow:     connectionReceiveWindow,
		InitialConnectionReceiveWindow: connectionReceiveWindow / 2,
	}
	ln, err := tr.Listen(serverTLS, qconf)
	if err != nil {
		tr.Close()
		if ownUDP {
			udp.Close()
		}
		return nil, fmt.Errorf("transport: listening: %w", err)
	}
	tctx, cancel := context.WithCancel(context.Background())
	t := &QUIC{
		cfg:       cfg,
		id:        cfg.Identity.ID(),
		log:       log,
		hello:     hello,
		clientTLS: clientTLS,
		qconf:     qconf,
		udp:       udp,
		ownUDP:    ownUDP,
		tr:        tr,
		ln:        ln,
		local:     local,
		slots:     make(chan struct{}, cfg.MaxHandlers),
		ctx:       tctx,
		cancel:    cancel,
		budget: newBudget(budgetLimits{
			conns:         cfg.MaxConns,
			inbound:       cfg.MaxInbound,
			handshakes:    cfg.MaxHandshakes,
			perGroup:      cfg.MaxInboundPerIPGroup,
			limitLoopback: cfg.LimitLoopback,
		}),
		conns:  make(map[*quic.Conn]*slot),
		byID:   make(map[block.ID]*peerConn),
		byAddr: make(map[netip.AddrPort]*peerConn),
		dials:  make(map[dialKey]*dialCall),
	}
	if cfg.Handler != nil {
		t.SetHandler(cfg.Handler)
	}
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

func addrPortOf(a net.Addr) (netip.AddrPort, error) {
	u, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("transport: address %v is not UDP", a)
	}
	ap := u.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// LocalAddr returns the address of the UDP socket.
func (t *QUIC) LocalAddr() netip.AddrPort { return t.local }

// Self returns this node as peers see it (with its socket address).
func (t *QUIC) Self() Peer {
	return Peer{ID: t.id, Addr: t.local, Pubkey: t.cfg.Identity.Public(), Client: t.cfg.Client, Advertised: t.cfg.Advertised}
}

// SetHandler sets the handler that answers requests from now on.
func (t *QUIC) SetHandler(h Handler) { t.handler.Store(&h) }

// Close stops accepting, closes every connection with CodeShuttingDown,
// waits for every goroutine it started, and closes the socket it opened.
func (t *QUIC) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	conns := make([]*quic.Conn, 0, len(t.conns))
	for qc := range t.conns {
		conns = append(conns, qc)
	}
	t.mu.Unlock()
	t.cancel()
	err := t.ln.Close()
	for _, qc := range conns {
		qc.CloseWithError(CodeShuttingDown, "shutting down")
	}
	t.wg.Wait()
	err = errors.Join(err, t.tr.Close())
	if t.ownUDP {
		err = errors.Join(err, t.udp.Close())
	}
	return err
}

// Request sends req to c over a verified connection, dialing one if
// none is open.
func (t *QUIC) Request(ctx context.Context, c Contact, req []byte) ([]byte, Peer, error) {
	start := time.Now()
	resp, p, err := t.request(ctx, c, req)
	if t.cfg.Observer != nil {
		t.cfg.Observer.RequestDone(RequestEvent{Dir: Outgoing, Peer: p.ID, Addr: c.Addr, Sent: len(req), Received: len(resp), Err: err, Duration: time.Since(start)})
	}
	return resp, p, err
}

// errStaleConn marks a request that failed because its cached connection
// had died before the request went out: it is retried on a fresh one.
// errRetired says the connection was replaced or evicted and is closing;
// the request is retried on its successor even when it was just dialed.
var (
	errStaleConn = errors.New("connection closed")
	errRetired   = errors.New("connection replaced")
)

func (t *QUIC) request(ctx context.Context, c Contact, req []byte) ([]byte, Peer, error) {
	if err := checkPayload(len(req)); err != nil {
		return nil, Peer{}, fmt.Errorf("request to %v: %w", c.Addr, err)
	}
	for attempt := 0; ; attempt++ {
		pc, reused, err := t.connFor(ctx, c)
		if err != nil {
			return nil, Peer{}, err
		}
		resp, err := t.exchange(ctx, pc, req)
		if errors.Is(err, errStaleConn) && (reused || errors.Is(err, errRetired)) && attempt == 0 {
			t.forget(pc)
			continue
		}
		if err != nil {
			return nil, pc.peer, err
		}
		return resp, pc.peer, nil
	}
}

// exchange runs one request on its own stream of pc.
func (t *QUIC) exchange(ctx context.Context, pc *peerConn, req []byte) ([]byte, error) {
	deadline := time.Now().Add(t.cfg.RequestTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	sctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	// failed says why the request failed; when the connection itself died
	// under it (the peer closed or restarted), it is marked stale so a
	// reused connection is replaced and the request tried once more. All
	// requests are idempotent, so a retry is safe even if the peer saw it.
	failed := func(err error) error {
		rerr := t.requestError(ctx, pc, err)
		var sr *quic.StatelessResetError
		if ctx.Err() == nil && (pc.qc.Context().Err() != nil || errors.As(err, &sr)) {
			return fmt.Errorf("%w: %w", errStaleConn, rerr)
		}
		return rerr
	}
	if !pc.act.begin(t.marks.Add(1)) {
		return nil, fmt.Errorf("%w: %w", errStaleConn, errRetired)
	}
	defer func() { pc.act.end(t.marks.Add(1)) }()
	s, err := pc.qc.OpenStreamSync(sctx)
	if err != nil {
		return nil, failed(err)
	}
	s.SetDeadline(deadline)
	// A caller that gives up aborts the stream, which ends the reads and
	// writes below at once.
	stop := context.AfterFunc(ctx, func() { abortStream(s, CodeNoError) })
	defer stop()
	// A request that fails for any reason (a deadline too) aborts its
	// stream, so a late response is refused rather than buffered: a
	// frame this node refuses with its code, anything else with 0x00.
	aborted := func(err error) error {
		code, ours := frameErrorCode(err)
		if !ours {
			code = CodeNoError
		}
		abortStream(s, code)
		return failed(err)
	}
	if err := writeFrame(s, req); err != nil {
		return nil, aborted(err)
	}
	if err := s.Close(); err != nil {
		return nil, aborted(err)
	}
	resp, err := readFrame(s, MaxFrameSize)
	if err != nil {
		return nil, aborted(err)
	}
	return resp, nil
}

// abortStream resets both sides of s with code.
func abortStream(s *quic.Stream, code quic.StreamErrorCode) {
	s.CancelRead(code)
	s.CancelWrite(code)
}

// frameErrorCode returns the reset code for a frame this node refuses,
// and whether the error is such a refusal.
func frameErrorCode(err error) (quic.StreamErrorCode, bool) {
	switch {
	case errors.Is(err, ErrFrameTooLarge):
		return CodeFrameTooLarge, true
	case errors.Is(err, ErrMalformed):
		return CodeMalformed, true
	}
	return CodeMalformed, false
}

// requestError says why a request failed in terms of the package's
// errors, keeping the underlying error for detail.
func (t *QUIC) requestError(ctx context.Context, pc *peerConn, err error) error {
	addr := pc.peer.Addr
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(cerr, context.DeadlineExceeded) {
			return fmt.Errorf("%w: %v: no response before the deadline: %w", ErrUnreachable, addr, cerr)
		}
		return fmt.Errorf("request to %v: %w", addr, cerr)
	}
	if t.ctx.Err() != nil {
		return ErrClosed
	}
	if errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrMalformed) {
		return fmt.Errorf("response from %v: %w", addr, err)
	}
	var se *quic.StreamError
	if errors.As(err, &se) && se.Remote {
		return fmt.Errorf("%w: %v reset the request stream (code %#x)", codeError(uint64(se.ErrorCode)), addr, uint64(se.ErrorCode))
	}
	var ae *quic.ApplicationError
	if errors.As(err, &ae) && ae.Remote {
		return fmt.Errorf("%w: %v closed the connection (code %#x: %s)", codeError(uint64(ae.ErrorCode)), addr, uint64(ae.ErrorCode), ae.ErrorMessage)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: %v: %w: %w", ErrUnreachable, addr, err, context.DeadlineExceeded)
	}
	return fmt.Errorf("%w: %v: %w", ErrUnreachable, addr, err)
}

// codeError maps an error code a peer sent to the package's errors.
func codeError(code uint64) error {
	switch code {
	case CodeFrameTooLarge:
		return ErrFrameTooLarge
	case CodeMalformed:
		return ErrRefused
	case CodeOverloaded:
		return ErrOverloaded
	case CodeHandshake:
		return ErrHandshake
	case CodeWrongNetwork:
		return ErrWrongNetwork
	}
	return ErrUnreachable
}

// connFor returns an open verified connection to c, dialing when there
// is none; concurrent requests for the same peer share one dial. reused
// tells whether the connection was already open.
func (t *QUIC) connFor(ctx context.Context, c Contact) (pc *peerConn, reused bool, err error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, false, ErrClosed
	}
	if pc := t.lookupLocked(c); pc != nil {
		t.mu.Unlock()
		return pc, true, nil
	}
	if !c.Addr.IsValid() {
		t.mu.Unlock()
		return nil, false, fmt.Errorf("%w: no address for %s", ErrUnreachable, c.ID.Short())
	}
	key := dialKey{id: c.ID}
	if c.ID.IsZero() {
		key.addr = c.Addr
	}
	call := t.dials[key]
	if call == nil {
		call = &dialCall{done: make(chan struct{})}
		t.dials[key] = call
		t.wg.Add(1)
		go t.dial(key, c, call)
	}
	t.mu.Unlock()
	select {
	case <-call.done:
		return call.pc, false, call.err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, false, fmt.Errorf("%w: %v: dial did not finish before the deadline: %w", ErrUnreachable, c.Addr, ctx.Err())
		}
		return nil, false, fmt.Errorf("request to %v: %w", c.Addr, ctx.Err())
	}
}

// lookupLocked finds a live connection for c, by ID when c has one.
func (t *QUIC) lookupLocked(c Contact) *peerConn {
	var pc *peerConn
	if !c.ID.IsZero() {
		pc = t.byID[c.ID]
	} else {
		pc = t.byAddr[c.Addr]
	}
	if pc == nil || pc.qc.Context().Err() != nil {
		return nil
	}
	return pc
}

// dial runs one dial for everyone waiting on call.
func (t *QUIC) dial(key dialKey, c Contact, call *dialCall) {
	defer t.wg.Done()
	pc, err := t.dialPeer(c)
	if err != nil && t.cfg.Observer != nil {
		t.cfg.Observer.ConnChanged(ConnEvent{State: ConnFailed, Dir: Outgoing, Peer: c.ID, Addr: c.Addr, Err: err})
	}
	t.mu.Lock()
	delete(t.dials, key)
	t.mu.Unlock()
	call.pc, call.err = pc, err
	close(call.done)
}

func (t *QUIC) dialPeer(c Contact) (*peerConn, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, ErrClosed
	}
	s, victim, err := t.budget.reserveOutbound()
	if victim != nil {
		t.retireLocked(victim.pc, CodeOverloaded, "evicted: too many connections")
	}
	t.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("%w: not dialing %v: %w", ErrOverloaded, c.Addr, err)
	}
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.DialTimeout)
	qc, err := t.tr.Dial(ctx, net.UDPAddrFromAddrPort(c.Addr), t.clientTLS, t.qconf)
	cancel()
	if err != nil {
		t.mu.Lock()
		t.budget.release(s)
		t.mu.Unlock()
		if t.ctx.Err() != nil {
			return nil, ErrClosed
		}
		var ae *quic.ApplicationError
		if errors.As(err, &ae) && ae.Remote {
			return nil, fmt.Errorf("%w: %v refused the connection (code %#x: %s)", codeError(uint64(ae.ErrorCode)), c.Addr, uint64(ae.ErrorCode), ae.ErrorMessage)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w: dialing %v: no answer within %v: %w", ErrUnreachable, c.Addr, t.cfg.DialTimeout, err)
		}
		return nil, fmt.Errorf("%w: dialing %v: %w", ErrUnreachable, c.Addr, err)
	}
	if err := t.track(qc, s); err != nil {
		qc.CloseWithError(CodeShuttingDown, "shutting down")
		return nil, err
	}
	pc, err := t.handshake(qc, Outgoing, c.ID)
	if err != nil {
		t.untrack(qc)
		return nil, err
	}
	t.start(pc)
	return pc, nil
}

// forget drops a dead connection from the maps so the next request
// redials.
func (t *QUIC) forget(pc *peerConn) {
	t.mu.Lock()
	t.unregisterLocked(pc)
	t.mu.Unlock()
}

// track records a connection with the budget slot it holds, so Close
// finds it. On a closed transport it releases the slot instead.
func (t *QUIC) track(qc *quic.Conn, s *slot) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		t.budget.release(s)
		return ErrClosed
	}
	t.conns[qc] = s
	return nil
}

// untrack forgets a connection that closed or failed its handshake and
// frees its slot.
func (t *QUIC) untrack(qc *quic.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.conns[qc]
	if s == nil {
		return
	}
	if s.pc != nil {
		t.unregisterLocked(s.pc)
	}
	t.budget.release(s)
	delete(t.conns, qc)
}

// admit makes a connection whose peer passed the HELLO checks available
// for requests. A newer connection with a peer's ID replaces the older
// one, whichever side dialed either, so one peer holds one slot. An
// incoming connection takes a place in the inbound share, which may
// evict the longest-idle connection; it is refused when none can give
// way.
func (t *QUIC) admit(qc *quic.Conn, dir Direction, peer Peer) (*peerConn, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.conns[qc]
	if t.closed || s == nil {
		return nil, ErrClosed
	}
	pc := &peerConn{qc: qc, peer: peer, dir: dir, slot: s, act: newActivity(t.marks.Add(1))}
	if old := t.byID[peer.ID]; old != nil {
		t.retireLocked(old, CodeNoError, "replaced by a newer connection")
	}
	victim, err := t.budget.verify(s, pc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOverloaded, err)
	}
	if victim != nil {
		t.retireLocked(victim.pc, CodeOverloaded, "evicted: too many connections")
	}
	t.byID[peer.ID] = pc
	t.byAddr[peer.Addr] = pc
	return pc, nil
}

// retireLocked takes pc out of use and frees its slot at once; drain
// closes it when its requests in flight end.
func (t *QUIC) retireLocked(pc *peerConn, code quic.ApplicationErrorCode, reason string) {
	t.log.Debug("closing connection", "peer", pc.peer.ID.Short(), "addr", pc.peer.Addr.String(), "dir", pc.dir.String(), "reason", reason)
	t.unregisterLocked(pc)
	t.budget.release(pc.slot)
	pc.act.retire()
	t.wg.Add(1)
	go t.drain(pc, code, reason)
}

// drain closes a retired connection once no request is in flight on it,
// and at the latest after RequestTimeout, so a peer cannot keep it open
// with new requests.
func (t *QUIC) drain(pc *peerConn, code quic.ApplicationErrorCode, reason string) {
	defer t.wg.Done()
	timer := time.NewTimer(t.cfg.RequestTimeout)
	defer timer.Stop()
	select {
	case <-pc.act.drained:
	case <-timer.C:
	case <-pc.qc.Context().Done():
		return
	case <-t.ctx.Done():
		return // Close closes every connection
	}
	pc.qc.CloseWithError(code, reason)
}

// start announces a verified connection and serves its requests.
func (t *QUIC) start(pc *peerConn) {
	if t.cfg.Observer != nil {
		t.cfg.Observer.ConnChanged(ConnEvent{State: ConnUp, Dir: pc.dir, Peer: pc.peer.ID, Addr: pc.peer.Addr})
	}
	t.wg.Add(1)
	go t.serveConn(pc)
}

func (t *QUIC) unregisterLocked(pc *peerConn) {
	if t.byID[pc.peer.ID] == pc {
		delete(t.byID, pc.peer.ID)
	}
	if t.byAddr[pc.peer.Addr] == pc {
		delete(t.byAddr, pc.peer.Addr)
	}
}

func (t *QUIC) acceptLoop() {
	defer t.wg.Done()
	for {
		qc, err := t.ln.Accept(t.ctx)
		if err != nil {
			return
		}
		if err := t.trackIncoming(qc); err != nil {
			t.log.Debug("refusing connection", "addr", qc.RemoteAddr().String(), "reason", err)
			qc.CloseWithError(CodeOverloaded, "too many connections")
			if t.cfg.Observer != nil {
				t.cfg.Observer.ConnChanged(ConnEvent{State: ConnFailed, Dir: Incoming, Addr: remoteAddr(qc), Err: err})
			}
			continue
		}
		t.wg.Add(1)
		go t.acceptConn(qc)
	}
}

// trackIncoming gives a new incoming connection a handshake slot.
func (t *QUIC) trackIncoming(qc *quic.Conn) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrClosed
	}
	s, err := t.budget.reserveHandshake(remoteAddr(qc).Addr())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrOverloaded, err)
	}
	t.conns[qc] = s
	return nil
}

func (t *QUIC) acceptConn(qc *quic.Conn) {
	defer t.wg.Done()
	pc, err := t.handshake(qc, Incoming, block.ID{})
	if err != nil {
		t.untrack(qc)
		if t.cfg.Observer != nil {
			t.cfg.Observer.ConnChanged(ConnEvent{State: ConnFailed, Dir: Incoming, Addr: remoteAddr(qc), Err: err})
		}
		return
	}
	t.start(pc)
}

func remoteAddr(qc *quic.Conn) netip.AddrPort {
	a, _ := addrPortOf(qc.RemoteAddr())
	return a
}

// handshake exchanges HELLOs on the connection's first stream: the
// dialer sends first, and the listener checks the dialer's HELLO, and
// admits the connection, before it answers with its own. expect is the
// ID a dialer asked for, if any. The connection returned is admitted.
func (t *QUIC) handshake(qc *quic.Conn, dir Direction, expect block.ID) (*peerConn, error) {
	deadline := time.Now().Add(t.cfg.HandshakeTimeout)
	ctx, cancel := context.WithDeadline(t.ctx, deadline)
	defer cancel()
	firstStream := qc.AcceptStream
	if dir == Outgoing {
		firstStream = qc.OpenStreamSync
	}
	s, err := firstStream(ctx)
	if err != nil {
		return nil, t.handshakeFailed(qc, err)
	}
	s.SetDeadline(deadline)
	if dir == Outgoing {
		if err := t.sendHello(s); err != nil {
			return nil, t.handshakeFailed(qc, err)
		}
	}
	b, err := readFrame(s, maxHelloSize)
	if err != nil {
		return nil, t.handshakeFailed(qc, err)
	}
	peer, code, err := t.checkHello(qc, b, expect)
	if err != nil {
		return nil, t.refuse(qc, code, err)
	}
	pc, err := t.admit(qc, dir, peer)
	if err != nil {
		t.log.Debug("refusing connection", "addr", peer.Addr.String(), "peer", peer.ID.Short(), "reason", err)
		if errors.Is(err, ErrClosed) {
			qc.CloseWithError(CodeShuttingDown, "shutting down")
		} else {
			qc.CloseWithError(CodeOverloaded, "too many connections")
		}
		return nil, err
	}
	if dir == Incoming {
		if err := t.sendHello(s); err != nil {
			return nil, t.handshakeFailed(qc, err)
		}
	}
	return pc, nil
}

func (t *QUIC) sendHello(s *quic.Stream) error {
	if err := writeFrame(s, t.hello); err != nil {
		return err
	}
	return s.Close()
}

// handshakeFailed handles an error while exchanging HELLOs: the peer
// refused us, sent a frame we refuse, or did not finish in time.
func (t *QUIC) handshakeFailed(qc *quic.Conn, err error) error {
	addr := remoteAddr(qc)
	if t.ctx.Err() != nil {
		return ErrClosed
	}
	var ae *quic.ApplicationError
	if errors.As(err, &ae) && ae.Remote {
		return fmt.Errorf("%w: %v refused our HELLO (code %#x: %s)", codeError(uint64(ae.ErrorCode)), addr, uint64(ae.ErrorCode), ae.ErrorMessage)
	}
	if _, ours := frameErrorCode(err); ours {
		return t.refuse(qc, CodeHandshake, fmt.Errorf("%w: HELLO frame: %w", ErrHandshake, err))
	}
	qc.CloseWithError(CodeHandshake, "handshake did not complete")
	return fmt.Errorf("%w: %v: HELLO exchange: %w", ErrHandshake, addr, err)
}

// refuse closes a connection whose peer failed the HELLO checks and logs
// why.
func (t *QUIC) refuse(qc *quic.Conn, code quic.ApplicationErrorCode, err error) error {
	addr := remoteAddr(qc)
	t.log.Warn("refusing peer", "addr", addr.String(), "reason", err.Error())
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200]
	}
	qc.CloseWithError(code, msg)
	return fmt.Errorf("%v: %w", addr, err)
}

// checkHello applies the HELLO rules of docs/PROTOCOL.md section 7 and
// returns the verified peer, or the code to close the connection with.
func (t *QUIC) checkHello(qc *quic.Conn, b []byte, expect block.ID) (Peer, quic.ApplicationErrorCode, error) {
	h, err := ParseHello(b)
	if err != nil {
		return Peer{}, CodeHandshake, fmt.Errorf("%w: HELLO: %w", ErrHandshake, err)
	}
	if h.Network != t.cfg.Network {
		return Peer{}, CodeWrongNetwork, fmt.Errorf("%w: peer is on %q, we are on %q", ErrWrongNetwork, h.Network, t.cfg.Network)
	}
	pk, err := identity.ParsePubkey(h.Pubkey)
	if err != nil {
		return Peer{}, CodeHandshake, fmt.Errorf("%w: pubkey block: %w", ErrHandshake, err)
	}
	certKey, err := peerCertKey(qc)
	if err != nil {
		return Peer{}, CodeHandshake, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	if !bytes.Equal(certKey, pk.SignKey) {
		return Peer{}, CodeHandshake, fmt.Errorf("%w: sign key of pubkey block %s differs from the TLS certificate's key", ErrHandshake, pk.ID.Short())
	}
	if pk.ID == t.id {
		return Peer{}, CodeHandshake, fmt.Errorf("%w: peer has our own ID", ErrHandshake)
	}
	if !expect.IsZero() && pk.ID != expect {
		return Peer{}, CodeHandshake, fmt.Errorf("%w: dialed %s, peer is %s", ErrWrongPeer, expect.Short(), pk.ID.Short())
	}
	addr := remoteAddr(qc)
	return Peer{ID: pk.ID, Addr: addr, Pubkey: pk, Client: h.Client, Advertised: t.usableAdvertised(pk.ID, addr, h.Addrs)}, 0, nil
}

// usableAdvertised returns the addresses of a HELLO that can be dialed,
// logging each it drops: those checkAdvertised refuses, and loopback and
// link-local ones unless this node's socket is on loopback.
func (t *QUIC) usableAdvertised(id block.ID, from netip.AddrPort, addrs []netip.AddrPort) []netip.AddrPort {
	kept := addrs[:0]
	for _, a := range addrs {
		err := checkAdvertised(a)
		ip := a.Addr().Unmap()
		if err == nil && !t.local.Addr().IsLoopback() && (ip.IsLoopback() || ip.IsLinkLocalUnicast()) {
			err = fmt.Errorf("%w: %v is loopback or link-local", ErrAddrUnusable, a)
		}
		if err != nil {
			t.log.Warn("dropping an advertised address", "peer", id.Short(), "addr", from.String(), "reason", err.Error())
			continue
		}
		kept = append(kept, a)
	}
	return kept
}

// serveConn accepts request streams of one verified connection until it
// closes.
func (t *QUIC) serveConn(pc *peerConn) {
	defer t.wg.Done()
	for {
		s, err := pc.qc.AcceptStream(t.ctx)
		if err != nil {
			break
		}
		select {
		case t.slots <- struct{}{}:
		default:
			abortStream(s, CodeOverloaded)
			t.log.Debug("request refused: too many handlers", "peer", pc.peer.ID.Short())
			continue
		}
		t.wg.Add(1)
		go t.serveStream(pc, s)
	}
	t.untrack(pc.qc)
	if t.cfg.Observer != nil {
		t.cfg.Observer.ConnChanged(ConnEvent{State: ConnDown, Dir: pc.dir, Peer: pc.peer.ID, Addr: pc.peer.Addr, Err: context.Cause(pc.qc.Context())})
	}
}

// serveStream answers one request.
func (t *QUIC) serveStream(pc *peerConn, s *quic.Stream) {
	defer t.wg.Done()
	defer func() { <-t.slots }()
	start := time.Now()
	deadline := start.Add(t.cfg.RequestTimeout)
	s.SetDeadline(deadline)
	var req, resp []byte
	err := func() error {
		var err error
		if req, err = readFrame(s, MaxFrameSize); err != nil {
			code, _ := frameErrorCode(err)
			abortStream(s, code)
			return err
		}
		h := t.handler.Load()
		if h == nil {
			abortStream(s, CodeOverloaded)
			return fmt.Errorf("%w: no handler yet", ErrOverloaded)
		}
		// From a whole request to its answer the connection is busy: it
		// is not evicted, and a retired one stays open until it ends.
		if pc.act.begin(t.marks.Add(1)) {
			defer pc.act.end(t.marks.Add(1))
		}
		ctx, cancel := context.WithDeadline(t.ctx, deadline)
		resp = (*h)(ctx, pc.peer, req)
		cancel()
		if t.ctx.Err() != nil {
			// Close cut the handler short; its answer may be partial.
			s.CancelWrite(CodeShuttingDown)
			resp = nil
			return ErrClosed
		}
		if err := checkPayload(len(resp)); err != nil {
			code := quic.StreamErrorCode(CodeMalformed)
			if errors.Is(err, ErrFrameTooLarge) {
				code = CodeFrameTooLarge
			}
			s.CancelWrite(code)
			resp = nil
			return fmt.Errorf("handler's response: %w", err)
		}
		if err := writeFrame(s, resp); err != nil {
			return err
		}
		return s.Close()
	}()
	if err != nil {
		t.log.Debug("request failed", "peer", pc.peer.ID.Short(), "addr", pc.peer.Addr.String(), "err", err)
	}
	if t.cfg.Observer != nil {
		t.cfg.Observer.RequestDone(RequestEvent{Dir: Incoming, Peer: pc.peer.ID, Addr: pc.peer.Addr, Sent: len(resp), Received: len(req), Err: err, Duration: time.Since(start)})
	}
}
