package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/flowmail/flowmail/identity"
)

// MemConfig shapes an in-memory network. The zero value is a network with
// no latency and no loss.
//
// Everything waits on ordinary timers and channels, so a whole network
// runs on the virtual clock of a testing/synctest bubble. Create the
// network and its endpoints inside the bubble: a goroutine waiting on a
// channel made outside it is not durably blocked, and time would stop.
type MemConfig struct {
	// Seed makes link latencies and losses reproducible.
	Seed uint64
	// Latency is the one-way delay of every link.
	Latency time.Duration
	// Jitter adds to each link a fixed extra delay in [0, Jitter), a
	// function of Seed and the link's two addresses (the same both ways).
	Jitter time.Duration
	// LinkLatency, when set, replaces Latency and Jitter: the one-way delay
	// between two addresses. It must be cheap and safe for concurrent use.
	LinkLatency func(a, b netip.AddrPort) time.Duration
	// Loss is the probability that a message (a request, or a response)
	// is lost. Each endpoint draws from its own generator seeded by Seed
	// and its address.
	Loss float64
	// FailFast makes a request that gets no answer (lost, partitioned, or
	// to an address where no endpoint listens) fail at once with
	// ErrUnreachable, instead of when its deadline passes.
	FailFast bool
	// DialTimeout bounds a request to an address where no endpoint
	// answers (dead or partitioned); zero means DefaultDialTimeout.
	DialTimeout time.Duration
	// RequestTimeout bounds every request and every handler's context;
	// zero means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// MaxHandlers bounds the handlers one endpoint runs at once; beyond
	// it requests fail with ErrOverloaded. Zero means MaxHandlers.
	MaxHandlers int
	// Prefix is the IPv4 prefix endpoint addresses are drawn from, and
	// Port the first port. Zero values mean 10.0.0.0/8 and 4433.
	// Addresses are scattered over the prefix (consecutive endpoints do
	// not share a /24), so routing-table limits per IP prefix behave as
	// on a real network; once the hosts run out the port goes up.
	Prefix netip.Prefix
	Port   uint16
}

// MemNetwork is a set of in-memory endpoints that reach each other by
// address. It is safe for concurrent use and starts no goroutines of its
// own; each endpoint owns the goroutines that run its handler.
type MemNetwork struct {
	cfg      MemConfig
	hostBits int

	mu        sync.RWMutex
	endpoints map[netip.AddrPort]*MemEndpoint
	groups    map[netip.AddrPort]int // partition group; absent means 0
	next      uint64                 // address allocation counter
}

// NewMemNetwork returns an empty network.
func NewMemNetwork(cfg MemConfig) *MemNetwork {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.MaxHandlers <= 0 {
		cfg.MaxHandlers = MaxHandlers
	}
	if !cfg.Prefix.IsValid() {
		cfg.Prefix = netip.MustParsePrefix("10.0.0.0/8")
	}
	cfg.Prefix = cfg.Prefix.Masked()
	if cfg.Port == 0 {
		cfg.Port = 4433
	}
	return &MemNetwork{
		cfg:       cfg,
		hostBits:  cfg.Prefix.Addr().BitLen() - cfg.Prefix.Bits(),
		endpoints: make(map[netip.AddrPort]*MemEndpoint),
	}
}

// MemEndpointConfig configures one endpoint of a MemNetwork.
type MemEndpointConfig struct {
	// Handler answers requests; it may also be set later with SetHandler.
	// Until one is set, requests to the endpoint fail with ErrOverloaded.
	Handler Handler
	// Client marks the endpoint as a client-mode node in what peers see.
	Client bool
	// Advertised are the addresses peers see it claim (at most
	// MaxAdvertised).
	Advertised []netip.AddrPort
	// Addr is the endpoint's address; zero lets the network pick one.
	Addr netip.AddrPort
	// Observer, when set, is told about every finished request. The
	// in-memory network has no connections: ConnChanged is never called.
	Observer Observer
}

// MemEndpoint is one node's transport on a MemNetwork.
type MemEndpoint struct {
	net      *MemNetwork
	self     Peer // how peers see this endpoint
	observer Observer
	ctx      context.Context // cancelled by Close
	cancel   context.CancelFunc

	mu       sync.Mutex
	closed   bool
	handler  Handler
	inflight int // handler goroutines running
	// drained is closed when the last handler returns after Close. (Not a
	// WaitGroup: inside a synctest bubble every WaitGroup.Add looks the
	// group up in its span's specials, and with one group per endpoint
	// that was a fiftieth of a simulation's time.)
	drained chan struct{}
	rng     *rand.Rand
}

var _ Transport = (*MemEndpoint)(nil)

// Listen adds an endpoint for id to the network.
func (n *MemNetwork) Listen(id *identity.Identity, cfg MemEndpointConfig) (*MemEndpoint, error) {
	if id == nil {
		return nil, errors.New("transport: Listen needs an identity")
	}
	if len(cfg.Advertised) > MaxAdvertised {
		return nil, fmt.Errorf("transport: %d advertised addresses, at most %d", len(cfg.Advertised), MaxAdvertised)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	addr := cfg.Addr
	if addr.IsValid() {
		if n.endpoints[addr] != nil {
			return nil, fmt.Errorf("transport: address %v already in use", addr)
		}
	} else {
		var err error
		if addr, err = n.allocate(); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &MemEndpoint{
		net: n,
		self: Peer{
			ID:         id.ID(),
			Addr:       addr,
			Pubkey:     id.Public(),
			Client:     cfg.Client,
			Advertised: append([]netip.AddrPort(nil), cfg.Advertised...),
		},
		observer: cfg.Observer,
		ctx:      ctx,
		cancel:   cancel,
		handler:  cfg.Handler,
		rng:      rand.New(rand.NewPCG(n.cfg.Seed, hashAddrPort(addr))),
	}
	n.endpoints[addr] = e
	return e, nil
}

// allocate picks the next free address. Called with n.mu held.
func (n *MemNetwork) allocate() (netip.AddrPort, error) {
	if !n.cfg.Prefix.Addr().Is4() {
		return netip.AddrPort{}, fmt.Errorf("transport: MemConfig.Prefix %v is not an IPv4 prefix", n.cfg.Prefix)
	}
	base := uint32FromAddr(n.cfg.Prefix.Addr())
	mask := uint64(1)<<n.hostBits - 1
	for {
		n.next++
		host := scatter(n.next&mask, n.hostBits)
		port := uint64(n.cfg.Port) + n.next>>n.hostBits
		if port > 65535 {
			return netip.AddrPort{}, fmt.Errorf("transport: no free address left in %v", n.cfg.Prefix)
		}
		if host == 0 && n.hostBits > 0 {
			continue // the network address itself
		}
		a := netip.AddrPortFrom(addrFromUint32(base|uint32(host)), uint16(port))
		if n.endpoints[a] == nil {
			return a, nil
		}
	}
}

// scatter is a bijection on bits-wide integers that spreads consecutive
// inputs over the whole range.
func scatter(x uint64, bits int) uint64 {
	if bits == 0 {
		return 0
	}
	mask := uint64(1)<<bits - 1
	for range 2 {
		x = (x * 0x9e3779b97f4a7c15) & mask // odd multiplier: a bijection mod 2^bits
		x ^= x >> (bits/2 + 1)
	}
	return x
}

func uint32FromAddr(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addrFromUint32(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// mix64 is the splitmix64 finalizer.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

func hashAddrPort(a netip.AddrPort) uint64 {
	b := a.Addr().As16()
	h := mix64(binary.BigEndian.Uint64(b[:8]))
	h = mix64(h ^ binary.BigEndian.Uint64(b[8:]))
	return mix64(h ^ uint64(a.Port()))
}

// latency is the one-way delay between a and b.
func (n *MemNetwork) latency(a, b netip.AddrPort) time.Duration {
	if f := n.cfg.LinkLatency; f != nil {
		return f(a, b)
	}
	d := n.cfg.Latency
	if j := n.cfg.Jitter; j > 0 {
		if a.Compare(b) > 0 {
			a, b = b, a
		}
		h := mix64(mix64(n.cfg.Seed^hashAddrPort(a)) ^ hashAddrPort(b))
		d += time.Duration(h % uint64(j))
	}
	return d
}

// Partition splits the network: endpoints in different groups cannot
// reach each other. Addresses in no group form one more group together.
// A later Partition replaces this one.
func (n *MemNetwork) Partition(groups ...[]netip.AddrPort) {
	m := make(map[netip.AddrPort]int)
	for i, g := range groups {
		for _, a := range g {
			m[a] = i + 1
		}
	}
	n.mu.Lock()
	n.groups = m
	n.mu.Unlock()
}

// Heal undoes Partition.
func (n *MemNetwork) Heal() {
	n.mu.Lock()
	n.groups = nil
	n.mu.Unlock()
}

// route returns the endpoint at b if a can reach it now.
func (n *MemNetwork) route(a, b netip.AddrPort) *MemEndpoint {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.groups[a] != n.groups[b] {
		return nil
	}
	return n.endpoints[b]
}

func (n *MemNetwork) remove(e *MemEndpoint) {
	n.mu.Lock()
	if n.endpoints[e.self.Addr] == e {
		delete(n.endpoints, e.self.Addr)
	}
	n.mu.Unlock()
}

// LocalAddr returns the endpoint's address.
func (e *MemEndpoint) LocalAddr() netip.AddrPort { return e.self.Addr }

// Self returns the endpoint as peers see it.
func (e *MemEndpoint) Self() Peer { return e.self }

// SetHandler sets the handler that answers requests from now on.
func (e *MemEndpoint) SetHandler(h Handler) {
	e.mu.Lock()
	e.handler = h
	e.mu.Unlock()
}

// Close removes the endpoint from the network, cancels its handlers'
// contexts and waits for them to return. Its own requests in flight fail
// with ErrClosed; peers find it unreachable.
func (e *MemEndpoint) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	if e.inflight > 0 {
		e.drained = make(chan struct{})
	}
	drained := e.drained
	e.mu.Unlock()
	e.cancel()
	e.net.remove(e)
	if drained != nil {
		<-drained
	}
	return nil
}

// Request sends req to c through the network.
//
// A request that gets no answer (lost request or response, a partition, no
// endpoint at c.Addr) fails when its deadline passes: the caller's, the
// network's DialTimeout when no endpoint was reached, or RequestTimeout.
// The error then wraps both ErrUnreachable and context.DeadlineExceeded.
// With MemConfig.FailFast it fails at once with ErrUnreachable.
func (e *MemEndpoint) Request(ctx context.Context, c Contact, req []byte) ([]byte, Peer, error) {
	start := time.Now()
	resp, p, err := e.request(ctx, c, req)
	if e.observer != nil {
		e.observer.RequestDone(RequestEvent{Dir: Outgoing, Peer: p.ID, Addr: c.Addr, Sent: len(req), Received: len(resp), Err: err, Duration: time.Since(start)})
	}
	return resp, p, err
}

// memReply is what a handler goroutine hands back to the requester.
type memReply struct {
	resp []byte
	err  error
}

func (e *MemEndpoint) request(ctx context.Context, c Contact, req []byte) ([]byte, Peer, error) {
	if err := checkPayload(len(req)); err != nil {
		return nil, Peer{}, fmt.Errorf("request to %v: %w", c.Addr, err)
	}
	if e.ctx.Err() != nil {
		return nil, Peer{}, ErrClosed
	}
	n := e.net
	start := time.Now()
	ctx, cancel := context.WithDeadline(ctx, start.Add(n.cfg.RequestTimeout))
	defer cancel()
	oneWay := n.latency(e.self.Addr, c.Addr)

	dst := n.route(e.self.Addr, c.Addr)
	if dst == nil {
		return nil, Peer{}, e.noAnswer(ctx, c, start.Add(n.cfg.DialTimeout), "no endpoint answers")
	}
	if e.lose() {
		return nil, Peer{}, e.noAnswer(ctx, c, time.Time{}, "request lost")
	}
	if err := e.wait(ctx, c, time.Now().Add(oneWay)); err != nil {
		return nil, Peer{}, err
	}
	if !c.ID.IsZero() && c.ID != dst.self.ID {
		if err := e.wait(ctx, c, time.Now().Add(oneWay)); err != nil {
			return nil, Peer{}, err
		}
		return nil, Peer{}, fmt.Errorf("%w: %v is %s, not %s", ErrWrongPeer, c.Addr, dst.self.ID.Short(), c.ID.Short())
	}
	reply, err := dst.deliver(e.self, bytes.Clone(req))
	if err != nil {
		if errors.Is(err, ErrOverloaded) {
			if werr := e.wait(ctx, c, time.Now().Add(oneWay)); werr != nil {
				return nil, Peer{}, werr
			}
			return nil, dst.self, fmt.Errorf("request to %v: %w", c.Addr, err)
		}
		return nil, Peer{}, e.noAnswer(ctx, c, start.Add(n.cfg.DialTimeout), "endpoint went away")
	}
	var r memReply
	select {
	case r = <-reply:
	case <-ctx.Done():
		return nil, Peer{}, e.deadlineError(ctx, c, "waiting for the response")
	case <-e.ctx.Done():
		return nil, Peer{}, ErrClosed
	}
	if n.route(dst.self.Addr, e.self.Addr) == nil || e.lose() {
		return nil, Peer{}, e.noAnswer(ctx, c, time.Time{}, "response lost")
	}
	if err := e.wait(ctx, c, time.Now().Add(oneWay)); err != nil {
		return nil, Peer{}, err
	}
	if r.err != nil {
		return nil, dst.self, fmt.Errorf("request to %v: %w", c.Addr, r.err)
	}
	return r.resp, dst.self, nil
}

// lose draws whether the next message from e is lost.
func (e *MemEndpoint) lose() bool {
	p := e.net.cfg.Loss
	if p <= 0 {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rng.Float64() < p
}

// wait blocks until t, the request's deadline, or Close.
func (e *MemEndpoint) wait(ctx context.Context, c Contact, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		if ctx.Err() != nil {
			return e.deadlineError(ctx, c, "")
		}
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return e.deadlineError(ctx, c, "")
	case <-e.ctx.Done():
		return ErrClosed
	}
}

// noAnswer waits until t (zero: the request's deadline) and reports that
// the peer never answered.
func (e *MemEndpoint) noAnswer(ctx context.Context, c Contact, t time.Time, why string) error {
	if !e.net.cfg.FailFast {
		if t.IsZero() {
			select {
			case <-ctx.Done():
			case <-e.ctx.Done():
				return ErrClosed
			}
		} else if err := e.wait(ctx, c, t); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return fmt.Errorf("%w: %v: %s: %w", ErrUnreachable, c.Addr, why, context.DeadlineExceeded)
	}
	return fmt.Errorf("%w: %v: %s", ErrUnreachable, c.Addr, why)
}

func (e *MemEndpoint) deadlineError(ctx context.Context, c Contact, doing string) error {
	err := context.Cause(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %v: deadline passed %s: %w", ErrUnreachable, c.Addr, doing, err)
	}
	return fmt.Errorf("request to %v: %w", c.Addr, err)
}

// handlerDone counts a handler out, releasing Close after the last.
func (e *MemEndpoint) handlerDone() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.inflight--; e.inflight == 0 && e.drained != nil {
		close(e.drained)
		e.drained = nil
	}
}

// deliver starts the handler for one request, or says why it cannot.
func (e *MemEndpoint) deliver(from Peer, req []byte) (<-chan memReply, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.closed:
		return nil, ErrClosed
	case e.handler == nil:
		return nil, fmt.Errorf("%w: no handler yet", ErrOverloaded)
	case e.inflight >= e.net.cfg.MaxHandlers:
		return nil, fmt.Errorf("%w: %d requests in progress", ErrOverloaded, e.inflight)
	}
	e.inflight++
	reply := make(chan memReply, 1)
	go e.serve(e.handler, from, req, reply)
	return reply, nil
}

func (e *MemEndpoint) serve(h Handler, from Peer, req []byte, reply chan<- memReply) {
	defer e.handlerDone()
	start := time.Now()
	ctx, cancel := context.WithTimeout(e.ctx, e.net.cfg.RequestTimeout)
	resp := h(ctx, from, req)
	cancel()
	var err error
	switch {
	case e.ctx.Err() != nil:
		err = fmt.Errorf("%w: peer shut down (code %#x)", ErrUnreachable, CodeShuttingDown)
	case len(resp) == 0:
		err = fmt.Errorf("%w: no answer (code %#x)", ErrRefused, CodeMalformed)
	case len(resp) > MaxFrameSize:
		err = fmt.Errorf("%w: response of %d bytes (code %#x)", ErrFrameTooLarge, len(resp), CodeFrameTooLarge)
	default:
		resp = bytes.Clone(resp)
	}
	if err != nil {
		resp = nil
	}
	if e.observer != nil {
		e.observer.RequestDone(RequestEvent{Dir: Incoming, Peer: from.ID, Addr: from.Addr, Sent: len(resp), Received: len(req), Err: err, Duration: time.Since(start)})
	}
	reply <- memReply{resp: resp, err: err}
}
