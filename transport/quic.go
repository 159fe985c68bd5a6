package transport

import (
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
	// Advertised are the addresses our HELLO says we are reachable at;
	// each must pass CheckPeerAddr (loopback only when we listen on it).
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

	// Limits of docs/PROTOCOL.md sections 7 and 11; zero takes the
	// constant of the same name.
	MaxInbound            int // verified connections peers dialed
	MaxOutbound           int // our dials in progress and verified connections we dialed
	MaxInboundPerGroup    int // of MaxInbound, from one source (Group)
	MaxHandshakes         int // incoming connections past their QUIC handshake, before their HELLO is verified
	MaxHandshakesPerGroup int // incoming connections before their HELLO (in either stage) from one source
	MaxQUICHandshakes     int // incoming connections in their QUIC handshake
	MaxStreamsPerConn     int // concurrent incoming streams per connection
	MaxHandlers           int // requests being read or answered at once
	MaxHandlersPerGroup   int // of those, on connections of one source
	// FrameGrace and MinFrameRate make the progress deadline of a
	// request's bytes: all must have arrived FrameGrace after the stream
	// opened, plus one second per MinFrameRate bytes received.
	FrameGrace   time.Duration
	MinFrameRate int

	// GroupOf says which source an address counts against for the
	// limits per source; nil means DefaultGroup. Tests on loopback use
	// GroupByPrefix or a map of their own to meet those limits.
	GroupOf func(netip.AddrPort) Group

	// frameAlloc, when set, allocates the buffers of frames read from
	// peers: tests count with it.
	frameAlloc func(n int) []byte
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
	loopback  bool // our socket is on loopback, so loopback peer addresses are usable
	handler   atomic.Pointer[Handler]
	frames    *frameBuffers // buffers of the frames read from peers
	preCount  atomic.Int64  // connections before their HELLO, for VerifySourceAddress

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the transport starts

	mu          sync.Mutex
	closed      bool
	marks       uint64 // order of admissions and completed requests: "idle" for eviction
	budget      *budget
	open        map[*quic.Conn]struct{}      // dialed or accepted and not yet let go: Close closes them
	byID        map[block.ID][]*peerConn     // verified, neither retired nor dead
	byAddr      map[netip.AddrPort]*peerConn // the newest of those at each address
	dials       map[block.ID]*dialCall       // dials in flight by the ID they expect
	dialsByAddr map[netip.AddrPort]*dialCall // every dial in flight by address
}

var _ Transport = (*QUIC)(nil)

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
	setDefault(&cfg.MaxInbound, MaxInbound)
	setDefault(&cfg.MaxOutbound, MaxOutbound)
	setDefault(&cfg.MaxInboundPerGroup, MaxInboundPerGroup)
	setDefault(&cfg.MaxHandshakes, MaxHandshakes)
	setDefault(&cfg.MaxHandshakesPerGroup, MaxHandshakesPerGroup)
	setDefault(&cfg.MaxQUICHandshakes, MaxQUICHandshakes)
	setDefault(&cfg.MaxStreamsPerConn, MaxStreamsPerConn)
	setDefault(&cfg.MaxHandlers, MaxHandlers)
	setDefault(&cfg.MaxHandlersPerGroup, MaxHandlersPerGroup)
	setDefault(&cfg.FrameGrace, FrameGrace)
	setDefault(&cfg.MinFrameRate, MinFrameRate)
	if cfg.GroupOf == nil {
		cfg.GroupOf = DefaultGroup
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
	fail := func(err error) (*QUIC, error) {
		if ownUDP {
			udp.Close()
		}
		return nil, err
	}
	local, err := addrPortOf(udp.LocalAddr())
	if err != nil {
		return fail(err)
	}
	loopback := local.Addr().IsLoopback()
	for _, a := range cfg.Advertised {
		if err := CheckPeerAddr(a, loopback); err != nil {
			return fail(fmt.Errorf("transport: QUICConfig.Advertised: %w", err))
		}
	}
	tctx, cancel := context.WithCancel(context.Background())
	t := &QUIC{
		cfg:       cfg,
		id:        cfg.Identity.ID(),
		log:       log,
		hello:     hello,
		clientTLS: clientTLS,
		udp:       udp,
		ownUDP:    ownUDP,
		local:     local,
		loopback:  loopback,
		frames:    &frameBuffers{alloc: cfg.frameAlloc},
		ctx:       tctx,
		cancel:    cancel,
		budget: newBudget(budgetLimits{
			inbound:            cfg.MaxInbound,
			inboundPerGroup:    cfg.MaxInboundPerGroup,
			outbound:           cfg.MaxOutbound,
			handshakes:         cfg.MaxHandshakes,
			handshakesPerGroup: cfg.MaxHandshakesPerGroup,
			quicHandshakes:     cfg.MaxQUICHandshakes,
			handlers:           cfg.MaxHandlers,
			handlersPerGroup:   cfg.MaxHandlersPerGroup,
		}),
		open:        make(map[*quic.Conn]struct{}),
		byID:        make(map[block.ID][]*peerConn),
		byAddr:      make(map[netip.AddrPort]*peerConn),
		dials:       make(map[block.ID]*dialCall),
		dialsByAddr: make(map[netip.AddrPort]*dialCall),
	}
	resetKey := quic.StatelessResetKey(block.LabeledHash(labelStatelessReset, cfg.Identity.SigningKey().Seed()))
	t.tr = &quic.Transport{
		Conn:              udp,
		StatelessResetKey: &resetKey,
		// Every incoming connection takes a pre-HELLO place from its
		// first packet; when half as many as MaxHandshakes are taken, a
		// newcomer must first prove its address (a Retry), so spoofed
		// packets cannot hold places in another source's name.
		ConnContext:         t.connContext,
		VerifySourceAddress: func(net.Addr) bool { return t.preCount.Load() >= int64(max(1, cfg.MaxHandshakes/2)) },
	}
	t.qconf = &quic.Config{
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
	if t.ln, err = t.tr.Listen(serverTLS, t.qconf); err != nil {
		cancel()
		t.tr.Close()
		return fail(fmt.Errorf("transport: listening: %w", err))
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

func remoteAddr(qc *quic.Conn) netip.AddrPort {
	a, _ := addrPortOf(qc.RemoteAddr())
	return a
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
	conns := make([]*quic.Conn, 0, len(t.open))
	for qc := range t.open {
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
