package transport

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
)

// budgetLimits are the connection limits of docs/PROTOCOL.md section 7,
// as a QUICConfig sets them.
type budgetLimits struct {
	conns      int // verified connections plus our dials in progress
	inbound    int // of conns, verified connections peers dialed
	handshakes int // incoming connections before their HELLO, beside conns
	perGroup   int // incoming connections (either stage) of one IP group; < 0: no limit
	// limitLoopback counts loopback peers against perGroup too; by
	// default they are exempt, since testnets run every node on one
	// loopback address.
	limitLoopback bool
}

// errBudget is why the budget refused a connection; callers wrap it in
// ErrOverloaded.
var errBudget = errors.New("connection limit")

// slot is one connection's place in the budget, from the moment it is
// admitted (before the QUIC dial for ours, after the QUIC handshake for
// theirs) until it closes, is replaced or is evicted.
type slot struct {
	dir      Direction
	group    netip.Prefix // the IP group an incoming connection counts against; invalid when exempt
	verified bool         // the HELLO exchange succeeded and pc is set
	pc       *peerConn
	held     bool // counts against the limits
}

// budget counts connections against the limits and chooses which one
// gives way when a direction is full. It does no I/O and reads no clock:
// "longest idle" is the lowest use mark a connection's activity holds.
// The QUIC transport keeps it under its mutex.
//
// Incoming and outgoing connections have separate shares: peers that
// dial us hold at most lim.inbound verified connections, so at least
// lim.conns - lim.inbound stay for our dials whatever peers do. Our dials
// may also use what the inbound share leaves free, and give it back (the
// longest-idle dial is evicted) when a verified peer needs it. A full
// share makes room by evicting its longest-idle connection that carries
// no request; a peer is refused only when every one is busy. Connections
// still in their HELLO exchange never evict anyone: they have their own
// small cap, and an IP group cap bounds what one operator can open.
type budget struct {
	lim        budgetLimits
	in, out    int                  // held verified incoming; held outgoing (dialing or verified)
	handshakes int                  // held incoming before the HELLO
	groups     map[netip.Prefix]int // held incoming per IP group
	slots      map[*slot]struct{}   // held slots, to choose whom to evict
}

func newBudget(lim budgetLimits) *budget {
	return &budget{lim: lim, groups: make(map[netip.Prefix]int), slots: make(map[*slot]struct{})}
}

// IPGroup returns the prefix whose hosts are likely under one operator:
// /24 for IPv4, /48 for IPv6. Limits per IP group use it.
func IPGroup(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 48
	if a.Is4() {
		bits = 24
	}
	p, _ := a.Prefix(bits) // invalid for an invalid address
	return p
}

// reserveOutbound takes a place for a dial. When every place is taken,
// the longest-idle verified outgoing connection gives way: victim is
// that connection, already released, for the caller to close.
func (b *budget) reserveOutbound() (s *slot, victim *slot, err error) {
	if b.in+b.out >= b.lim.conns {
		if victim = b.idlest(Outgoing); victim == nil {
			return nil, nil, fmt.Errorf("%w: %d connections open (%d dialed by peers), every dial busy", errBudget, b.in+b.out, b.in)
		}
		b.release(victim)
	}
	s = &slot{dir: Outgoing}
	b.hold(s)
	return s, victim, nil
}

// reserveHandshake takes a place for an incoming connection from addr
// until its HELLO exchange ends.
func (b *budget) reserveHandshake(addr netip.Addr) (*slot, error) {
	s := &slot{dir: Incoming}
	if b.lim.perGroup >= 0 && (b.lim.limitLoopback || !addr.Unmap().IsLoopback()) {
		s.group = IPGroup(addr)
		if n := b.groups[s.group]; n >= b.lim.perGroup {
			return nil, fmt.Errorf("%w: %d connections from %v", errBudget, n, s.group)
		}
	}
	if b.handshakes >= b.lim.handshakes {
		return nil, fmt.Errorf("%w: %d connections in handshake", errBudget, b.handshakes)
	}
	b.hold(s)
	return s, nil
}

// verify marks s's HELLO exchange done. An incoming connection moves to
// the inbound share; when that is full, or our dials borrowed what it
// lacks, the longest-idle connection of the side that must give way is
// released and returned as victim for the caller to close. When none can
// give way, s is released and an error returned.
func (b *budget) verify(s *slot, pc *peerConn) (victim *slot, err error) {
	if !s.held {
		return nil, fmt.Errorf("%w: connection was released", errBudget)
	}
	if s.dir == Incoming {
		if b.in >= b.lim.inbound || b.in+b.out >= b.lim.conns {
			side := Incoming
			if b.in < b.lim.inbound {
				side = Outgoing // our dials borrowed the inbound share
			}
			if victim = b.idlest(side); victim == nil {
				b.release(s)
				return nil, fmt.Errorf("%w: %d connections open (%d dialed by peers), none idle", errBudget, b.in+b.out, b.in)
			}
			b.release(victim)
		}
		b.handshakes--
		b.in++
	}
	s.verified, s.pc = true, pc
	return victim, nil
}

// idlest returns the held verified connection of direction dir that has
// gone longest without a request and carries none now, or nil.
func (b *budget) idlest(dir Direction) *slot {
	var best *slot
	var bestMark uint64
	for s := range b.slots {
		if s.dir != dir || !s.verified {
			continue
		}
		mark, busy := s.pc.act.idle()
		if busy {
			continue
		}
		if best == nil || mark < bestMark {
			best, bestMark = s, mark
		}
	}
	return best
}

func (b *budget) hold(s *slot) {
	s.held = true
	b.slots[s] = struct{}{}
	switch {
	case s.dir == Outgoing:
		b.out++
	case s.verified:
		b.in++
	default:
		b.handshakes++
	}
	if s.group.IsValid() {
		b.groups[s.group]++
	}
}

// release frees s's place; releasing twice does nothing.
func (b *budget) release(s *slot) {
	if s == nil || !s.held {
		return
	}
	s.held = false
	delete(b.slots, s)
	switch {
	case s.dir == Outgoing:
		b.out--
	case s.verified:
		b.in--
	default:
		b.handshakes--
	}
	if s.group.IsValid() {
		if b.groups[s.group]--; b.groups[s.group] <= 0 {
			delete(b.groups, s.group)
		}
	}
}

// activity is what eviction and replacement need to know of a verified
// connection: when it last carried a request, as a mark from a counter
// the transport advances, how many requests it carries now, and whether
// it is retired (waiting for those to end before it closes).
type activity struct {
	mu       sync.Mutex
	mark     uint64
	busy     int
	retired  bool
	drained  chan struct{} // closed once retired with no request in flight
	signaled bool
}

func newActivity(mark uint64) *activity {
	return &activity{mark: mark, drained: make(chan struct{})}
}

// begin and end bracket one request, incoming or outgoing. begin
// reports false, and counts nothing, once the connection is retired and
// drained: it is closing, and an outgoing request should take its
// successor.
func (a *activity) begin(mark uint64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.signaled {
		return false
	}
	a.busy++
	a.mark = mark
	return true
}

func (a *activity) end(mark uint64) {
	a.mu.Lock()
	a.busy--
	a.mark = mark
	a.signalLocked()
	a.mu.Unlock()
}

// retire marks the connection as going: drained closes once no request
// is in flight.
func (a *activity) retire() {
	a.mu.Lock()
	a.retired = true
	a.signalLocked()
	a.mu.Unlock()
}

func (a *activity) signalLocked() {
	if a.retired && a.busy == 0 && !a.signaled {
		a.signaled = true
		close(a.drained)
	}
}

func (a *activity) idle() (mark uint64, busy bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.mark, a.busy > 0
}
