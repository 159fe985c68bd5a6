package transport

import (
	"context"
	"errors"
	"fmt"

	"github.com/quic-go/quic-go"
)

// budgetLimits are the limits of docs/PROTOCOL.md section 7 ("Limits per
// source") as a QUICConfig sets them.
type budgetLimits struct {
	inbound            int // verified connections peers dialed
	inboundPerGroup    int // of those, from one source
	outbound           int // our dials in progress and verified connections we dialed
	handshakes         int // incoming connections quic-go handed over, before their HELLO is verified
	handshakesPerGroup int // incoming connections before their HELLO (in either stage) from one source
	quicHandshakes     int // incoming connections still in their QUIC handshake
	handlers           int // requests being read or answered, node-wide
	handlersPerGroup   int // of those, on connections of one source
}

// errBudget is why a limit refused something; callers wrap it in
// ErrOverloaded.
var errBudget = errors.New("limit reached")

// preConn is an incoming connection from its first QUIC packet until its
// HELLO is verified or it fails: it holds a place in the small pre-HELLO
// budget and nothing else.
type preConn struct {
	group Group
	seq   uint64          // arrival order: the oldest is evicted first
	ctx   context.Context // quic-go's context for the connection: done when it closes
	// qc is set once quic-go hands the connection over; only such a
	// connection can be evicted.
	qc   *quic.Conn
	held bool
}

// budget counts connections and requests against the limits and chooses
// who gives way when one is full. It does no I/O and reads no clock: the
// QUIC transport keeps it under its mutex, and "idle" is an order of
// marks the transport hands out.
//
// Inbound and outbound have separate shares, so peers that dial us can
// never take the room we need to dial out. A full inbound share (or a
// source at its cap) makes room by evicting a connection of the
// most-represented source (or of that source): connections that are
// retired first, then those that never completed a request (oldest
// first), then the one idle longest. A newcomer is never refused for
// lack of inbound room. A full outbound share evicts our own
// longest-idle connection that carries no request, and refuses the dial
// when every one is busy. Before its HELLO, a connection holds a place
// in the small pre-HELLO budget: once quic-go hands it over, a newcomer
// evicts the oldest such connection of the most-represented source.
// Connections still in their QUIC handshake cannot be closed from
// outside quic-go, so they are only counted: a newcomer is refused (at
// QUIC level) when its own source's places are all held by them, or when
// quicHandshakes of them are in progress.
type budget struct {
	lim budgetLimits

	in       map[*peerConn]struct{}
	inGroups map[Group]int
	out      int // dials in progress plus outConns
	outConns map[*peerConn]struct{}

	pre       map[*preConn]struct{}
	preGroups map[Group]int
	accepted  int // of pre, those quic-go handed over

	handlers      int
	handlerGroups map[Group]int
}

func newBudget(lim budgetLimits) *budget {
	return &budget{
		lim:           lim,
		in:            make(map[*peerConn]struct{}),
		inGroups:      make(map[Group]int),
		outConns:      make(map[*peerConn]struct{}),
		pre:           make(map[*preConn]struct{}),
		preGroups:     make(map[Group]int),
		handlerGroups: make(map[Group]int),
	}
}

// reservePre gives p, a connection whose first QUIC packet just
// arrived, a place before its HELLO. When p's source is at its cap, the
// oldest of its connections that quic-go handed over gives way: victim,
// already released, for the caller to close. err says p is refused:
// its source's places are all held by connections still in their QUIC
// handshake (which cannot be closed from outside quic-go), or
// quicHandshakes connections are in their QUIC handshake.
func (b *budget) reservePre(p *preConn) (victim *preConn, err error) {
	b.sweepPre()
	if b.preGroups[p.group] >= b.lim.handshakesPerGroup {
		victim = b.oldestPre(func(q *preConn) bool { return q.group == p.group })
		if victim == nil {
			return nil, fmt.Errorf("%w: %d connections before HELLO from %v", errBudget, b.preGroups[p.group], p.group)
		}
	}
	if n := len(b.pre) - b.accepted; n >= b.lim.quicHandshakes {
		return nil, fmt.Errorf("%w: %d QUIC handshakes in progress", errBudget, n)
	}
	b.releasePre(victim)
	p.held = true
	b.pre[p] = struct{}{}
	b.preGroups[p.group]++
	return victim, nil
}

// acceptPre records that quic-go handed p over as qc: from now on it
// waits for its HELLO and can be evicted. When more than handshakes
// connections wait so, the oldest of the most-represented source gives
// way: victim, already released, for the caller to close (never p, the
// newest). It reports false when p no longer holds a place.
func (b *budget) acceptPre(p *preConn, qc *quic.Conn) (victim *preConn, ok bool) {
	if !p.held {
		return nil, false
	}
	p.qc = qc
	b.accepted++
	if b.accepted > b.lim.handshakes {
		most := 0
		for q := range b.pre {
			if q.qc != nil {
				most = max(most, b.preGroups[q.group])
			}
		}
		victim = b.oldestPre(func(q *preConn) bool { return b.preGroups[q.group] == most })
		b.releasePre(victim)
	}
	return victim, true
}

// sweepPre releases connections that closed before quic-go handed them
// over: nothing else learns of them.
func (b *budget) sweepPre() {
	for q := range b.pre {
		if q.qc == nil && q.ctx != nil && q.ctx.Err() != nil {
			b.releasePre(q)
		}
	}
}

// oldestPre returns the oldest accepted connection that ok admits.
func (b *budget) oldestPre(ok func(*preConn) bool) *preConn {
	var best *preConn
	for q := range b.pre {
		if q.qc != nil && ok(q) && (best == nil || q.seq < best.seq) {
			best = q
		}
	}
	return best
}

// releasePre frees p's place; releasing twice (or nil) does nothing.
func (b *budget) releasePre(p *preConn) {
	if p == nil || !p.held {
		return
	}
	p.held = false
	delete(b.pre, p)
	if p.qc != nil {
		b.accepted--
	}
	if b.preGroups[p.group]--; b.preGroups[p.group] <= 0 {
		delete(b.preGroups, p.group)
	}
}

// preCount is how many connections hold a pre-HELLO place.
func (b *budget) preCount() int { return len(b.pre) }

// admitIn gives a verified incoming connection its inbound place. When
// its source or the inbound share is full, victim is the connection
// that gives way, already released: the caller closes it.
func (b *budget) admitIn(pc *peerConn) (victim *peerConn) {
	switch {
	case b.inGroups[pc.group] >= b.lim.inboundPerGroup:
		victim = b.victim(b.in, func(q *peerConn) bool { return q.group == pc.group })
	case len(b.in) >= b.lim.inbound:
		most := 0
		for _, n := range b.inGroups {
			most = max(most, n)
		}
		victim = b.victim(b.in, func(q *peerConn) bool { return b.inGroups[q.group] == most })
	}
	b.remove(victim)
	pc.held = true
	b.in[pc] = struct{}{}
	b.inGroups[pc.group]++
	return victim
}

// reserveOut takes an outbound place for a dial. When the share is
// full, victim is our idlest connection that carries no request, already
// released: the caller closes it.
func (b *budget) reserveOut() (victim *peerConn, err error) {
	if b.out >= b.lim.outbound {
		victim = b.victim(b.outConns, func(q *peerConn) bool { return q.inflight == 0 })
		if victim == nil {
			return nil, fmt.Errorf("%w: %d outgoing connections, every one busy", errBudget, b.out)
		}
		b.remove(victim)
	}
	b.out++
	return victim, nil
}

// addOut moves a dial's place to the verified connection it made.
func (b *budget) addOut(pc *peerConn) {
	pc.held = true
	b.outConns[pc] = struct{}{}
}

// releaseOut frees the place of a dial that made no connection.
func (b *budget) releaseOut() { b.out-- }

// remove frees a verified connection's place; removing twice (or nil)
// does nothing.
func (b *budget) remove(pc *peerConn) {
	if pc == nil || !pc.held {
		return
	}
	pc.held = false
	if pc.dir == Outgoing {
		delete(b.outConns, pc)
		b.out--
		return
	}
	delete(b.in, pc)
	if b.inGroups[pc.group]--; b.inGroups[pc.group] <= 0 {
		delete(b.inGroups, pc.group)
	}
}

// victim returns the connection of set that ok admits and that should
// give way first (see evictsBefore), or nil.
func (b *budget) victim(set map[*peerConn]struct{}, ok func(*peerConn) bool) *peerConn {
	var best *peerConn
	for q := range set {
		if ok(q) && (best == nil || evictsBefore(q, best)) {
			best = q
		}
	}
	return best
}

// evictsBefore orders connections for eviction: retired ones (closing
// anyway) first, then those that never completed a request, oldest
// first (a connection that only holds a place), then the one whose last
// request completed longest ago.
func evictsBefore(a, b *peerConn) bool {
	if a.retired != b.retired {
		return a.retired
	}
	if a.completed != b.completed {
		return !a.completed
	}
	if !a.completed {
		return a.seq < b.seq
	}
	return a.lastDone < b.lastDone
}

// acquireHandler takes a place for one request on a connection of
// source g.
func (b *budget) acquireHandler(g Group) error {
	if b.handlers >= b.lim.handlers {
		return fmt.Errorf("%w: %d requests running", errBudget, b.handlers)
	}
	if b.handlerGroups[g] >= b.lim.handlersPerGroup {
		return fmt.Errorf("%w: %d requests running from %v", errBudget, b.handlerGroups[g], g)
	}
	b.handlers++
	b.handlerGroups[g]++
	return nil
}

func (b *budget) releaseHandler(g Group) {
	b.handlers--
	if b.handlerGroups[g]--; b.handlerGroups[g] <= 0 {
		delete(b.handlerGroups, g)
	}
}
