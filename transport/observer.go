package transport

import (
	"net/netip"
	"time"

	"github.com/flowmail/flowmail/block"
)

// Direction tells who started a request or a connection.
type Direction uint8

const (
	// Outgoing: this node sent the request or dialed the connection.
	Outgoing Direction = iota + 1
	// Incoming: the peer did.
	Incoming
)

func (d Direction) String() string {
	switch d {
	case Outgoing:
		return "out"
	case Incoming:
		return "in"
	}
	return "unknown"
}

// RequestEvent describes one finished request, in either direction.
type RequestEvent struct {
	Dir      Direction
	Peer     block.ID // zero when the peer was never identified
	Addr     netip.AddrPort
	Sent     int // payload bytes this node sent (request or response)
	Received int // payload bytes this node received
	Err      error
	Duration time.Duration
}

// ConnState is what happened to a connection.
type ConnState uint8

const (
	// ConnUp: the handshake completed and the connection carries requests.
	ConnUp ConnState = iota + 1
	// ConnDown: an established connection closed.
	ConnDown
	// ConnFailed: a dial or handshake failed, or a connection was refused.
	ConnFailed
)

func (s ConnState) String() string {
	switch s {
	case ConnUp:
		return "up"
	case ConnDown:
		return "down"
	case ConnFailed:
		return "failed"
	}
	return "unknown"
}

// ConnEvent describes a change of one connection.
type ConnEvent struct {
	State ConnState
	Dir   Direction
	Peer  block.ID // zero when the handshake did not tell
	Addr  netip.AddrPort
	Err   error // why a connection failed or closed; nil on ConnUp
}

// Observer receives events a node can turn into metrics. Its methods are
// called synchronously from the transport's goroutines, so they must be
// cheap and must not block or call back into the transport.
type Observer interface {
	RequestDone(RequestEvent)
	ConnChanged(ConnEvent)
}
