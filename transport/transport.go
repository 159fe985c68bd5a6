package transport

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

// Limits of the transport (docs/PROTOCOL.md sections 7 and 11). A
// source is a Group: an IPv4 /24 or IPv6 /48.
const (
	ALPN              = "flowmail/1"
	MaxFrameSize      = block.MaxBlockSize + 1024
	MaxStreamsPerConn = 32 // concurrent requests a peer may open on one connection
	MaxAdvertised     = 4
	MaxNetworkName    = 32

	// MaxInbound verified connections that peers dialed, and MaxOutbound
	// dials in progress and verified connections this node dialed: two
	// shares, so peers can never take the room a node needs to dial out.
	MaxInbound  = 192
	MaxOutbound = 64
	// MaxInboundPerGroup of the inbound connections may come from one
	// source.
	MaxInboundPerGroup = 8
	// MaxHandshakes incoming connections past their QUIC handshake may
	// wait for their HELLO to be verified (the pre-HELLO budget, beside
	// MaxInbound); at most MaxHandshakesPerGroup connections before
	// their HELLO (in either stage) come from one source, and at most
	// MaxQUICHandshakes are in their QUIC handshake.
	MaxHandshakes         = 32
	MaxHandshakesPerGroup = 4
	MaxQUICHandshakes     = 128
	// MaxHandlers requests a node reads or answers at once: enough for
	// every stream of dozens of busy peers, few enough that their frames
	// fit in memory. MaxHandlersPerGroup of them may come over
	// connections of one source.
	MaxHandlers         = 256
	MaxHandlersPerGroup = 64
	// FrameGrace and MinFrameRate make the progress deadline of a
	// request's bytes: all must have arrived FrameGrace after its stream
	// opened, plus one second for each MinFrameRate bytes received
	// (never later than the request's deadline). A request trickled a
	// byte at a time loses its stream after FrameGrace; one that keeps
	// MinFrameRate keeps its whole RequestTimeout.
	FrameGrace   = 5 * time.Second
	MinFrameRate = 4 << 10 // bytes per second
)

// Deadlines of the transport (docs/PROTOCOL.md, "Transport"): the defaults
// both implementations use when their config leaves a timeout zero.
const (
	DefaultDialTimeout      = 5 * time.Second
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultRequestTimeout   = 10 * time.Second
	DefaultIdleTimeout      = 60 * time.Second
)

// Contact is where to reach a peer. ID may be zero when only the address
// is known (bootstrap); the handshake then tells who answered.
type Contact struct {
	ID   block.ID
	Addr netip.AddrPort
}

// Peer is a remote node whose identity the handshake verified.
type Peer struct {
	ID     block.ID
	Addr   netip.AddrPort // the address its packets come from
	Pubkey *identity.PublicKey
	// Client is set when the peer said it runs in client mode: it must not
	// be added to routing tables.
	Client bool
	// Advertised are the addresses the peer says it is reachable at.
	Advertised []netip.AddrPort
}

// Handler answers one request from a verified peer. It returns the
// response payload; it must not keep req after returning. ctx is
// cancelled when the request's deadline passes or the transport closes.
type Handler func(ctx context.Context, from Peer, req []byte) []byte

// Transport moves opaque request/response payloads between verified
// nodes. It knows nothing of what the payloads mean.
type Transport interface {
	// Request sends req to c and returns the response and who answered.
	// When c.ID is not zero, a peer with another ID is refused. It only
	// reads req, and not after it returns: concurrent requests may share
	// one.
	Request(ctx context.Context, c Contact, req []byte) ([]byte, Peer, error)
	// LocalAddr is the address the transport listens on.
	LocalAddr() netip.AddrPort
	// Close stops listening, closes every connection and waits for every
	// goroutine the transport started.
	Close() error
}

// Errors a Request can return, wrapped with detail.
var (
	ErrClosed        = errors.New("transport: closed")
	ErrFrameTooLarge = errors.New("transport: frame too large")
	ErrHandshake     = errors.New("transport: handshake failed")
	ErrWrongPeer     = errors.New("transport: peer has another ID")
	ErrWrongNetwork  = errors.New("transport: peer is on another network")
	ErrUnreachable   = errors.New("transport: peer unreachable")
	ErrOverloaded    = errors.New("transport: peer overloaded")
)

// More errors a Request can return (added beside the ones above).
var (
	// ErrRefused: the peer reset the request's stream because it found
	// the request malformed, or its handler gave no answer (code 0x02).
	ErrRefused = errors.New("transport: peer refused the request")
	// ErrEmptyPayload: a request or response of zero bytes; a frame holds
	// 1 to MaxFrameSize bytes.
	ErrEmptyPayload = errors.New("transport: empty payload")
)
