package transport

import (
	"bytes"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/flowmail/flowmail/block"
)

// peerConn is a connection whose HELLO exchange succeeded.
type peerConn struct {
	qc    *quic.Conn
	dir   Direction
	group Group // the source its peer's address counts against
	peer  Peer

	// Guarded by QUIC.mu.
	seq       uint64 // admission mark
	held      bool   // holds an inbound or outbound place (budget)
	retired   bool   // takes no new request of ours; closes once drained
	dead      bool   // closed, evicted, or seen failing as a whole
	inflight  int    // requests in flight, ours and the peer's
	completed bool   // a request completed on it
	lastDone  uint64 // mark of the last completed request
	drained   chan struct{}
	signaled  bool // drained is closed
}

// Which of two connections between the same nodes survives
// (docs/PROTOCOL.md section 7.3):
//   - both dialed by the peer: the newer one; we retire the older.
//   - one dialed by each side: the one the node with the lower ID
//     dialed. Only the dialer of the other retires it, so the two ends
//     agree without a message.
//   - both dialed by us: the peer retires one of them.
//
// Requests go on the newest connection that is not retired: until the
// loser's dialer closes it, both may carry requests, and a connection we
// hold from before a peer restarted is not used once the peer dialed us
// anew. A retired connection carries no new request of ours and is
// closed (0x00) once no request is in flight on it, or RequestTimeout
// after it was retired. A request of the peer's that crosses that close
// is retried once on the surviving connection (requests are idempotent).

// lowDialer is the direction, seen from this node, of connections that
// win against a connection the other way to peer id: those dialed by the
// lower of the two IDs.
func (t *QUIC) lowDialer(id block.ID) Direction {
	if bytes.Compare(t.id[:], id[:]) < 0 {
		return Outgoing
	}
	return Incoming
}

// admitLocked makes a connection whose peer passed the HELLO checks
// available for requests, gives it its place in the budget, and applies
// the rules above to other connections with the same peer. victim is a
// connection the budget evicted to make room, already dropped: the
// caller closes it.
func (t *QUIC) admitLocked(pc *peerConn, pre *preConn) (victim *peerConn) {
	t.marks++
	pc.seq = t.marks
	if pc.dir == Incoming {
		t.budget.releasePre(pre)
		t.preCount.Store(int64(t.budget.preCount()))
		if victim = t.budget.admitIn(pc); victim != nil {
			t.dropLocked(victim)
		}
	} else {
		t.budget.addOut(pc)
	}
	id := pc.peer.ID
	low := t.lowDialer(id)
	lose := false
	for _, e := range append([]*peerConn(nil), t.byID[id]...) {
		switch {
		case e.dir == Incoming && pc.dir == Incoming:
			t.retireLocked(e, "replaced by a newer connection")
		case e.dir == pc.dir:
			// Both ours: the peer retires one of them.
		case e.dir == Outgoing && low == Incoming:
			t.retireLocked(e, "the peer's connection to us is kept")
		case pc.dir == Outgoing && low == Incoming:
			lose = true
		}
	}
	if lose {
		t.retireLocked(pc, "the peer's connection to us is kept")
		return victim
	}
	t.byID[id] = append(t.byID[id], pc)
	t.byAddr[pc.peer.Addr] = pc
	return victim
}

// preferredLocked returns the connection requests to id use: the newest
// live one. A peer that dialed us anew knows that connection; one we hold
// from before may be stale (the peer restarted) and is left to die at its
// idle timeout, or to be retired by its dialer.
func (t *QUIC) preferredLocked(id block.ID) *peerConn {
	var best *peerConn
	for _, pc := range t.byID[id] {
		if usable(pc) && (best == nil || pc.seq > best.seq) {
			best = pc
		}
	}
	return best
}

// usable reports whether new requests may go on pc (under QUIC.mu).
func usable(pc *peerConn) bool {
	return !pc.retired && !pc.dead && pc.qc.Context().Err() == nil
}

// lookupLocked finds the connection for c, by ID when c has one.
func (t *QUIC) lookupLocked(c Contact) *peerConn {
	if !c.ID.IsZero() {
		return t.preferredLocked(c.ID)
	}
	pc := t.byAddr[c.Addr]
	if pc == nil || !usable(pc) {
		return nil
	}
	if p := t.preferredLocked(pc.peer.ID); p != nil {
		return p
	}
	return pc
}

func (t *QUIC) unregisterLocked(pc *peerConn) {
	conns := t.byID[pc.peer.ID]
	for i, e := range conns {
		if e == pc {
			conns = append(conns[:i:i], conns[i+1:]...)
			break
		}
	}
	if len(conns) == 0 {
		delete(t.byID, pc.peer.ID)
	} else {
		t.byID[pc.peer.ID] = conns
	}
	if t.byAddr[pc.peer.Addr] == pc {
		delete(t.byAddr, pc.peer.Addr)
	}
}

// retireLocked takes pc out of use for our requests; drain closes it
// once no request is in flight on it.
func (t *QUIC) retireLocked(pc *peerConn, reason string) {
	if pc.retired || pc.dead {
		return
	}
	t.log.Debug("retiring connection", "peer", pc.peer.ID.Short(), "addr", pc.peer.Addr.String(), "dir", pc.dir.String(), "reason", reason)
	pc.retired = true
	t.unregisterLocked(pc)
	pc.drained = make(chan struct{})
	t.signalLocked(pc)
	t.wg.Add(1)
	go t.drain(pc, reason)
}

// retire is retireLocked for a caller without the lock.
func (t *QUIC) retire(pc *peerConn, reason string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed {
		t.retireLocked(pc, reason)
	}
}

func (t *QUIC) signalLocked(pc *peerConn) {
	if pc.retired && pc.inflight == 0 && !pc.signaled {
		pc.signaled = true
		close(pc.drained)
	}
}

// drain closes a retired connection once no request is in flight on it,
// and at the latest after RequestTimeout, so a peer cannot keep it open
// with new requests.
func (t *QUIC) drain(pc *peerConn, reason string) {
	defer t.wg.Done()
	timer := time.NewTimer(t.cfg.RequestTimeout)
	defer timer.Stop()
	select {
	case <-pc.drained:
	case <-timer.C:
	case <-pc.qc.Context().Done():
		return
	case <-t.ctx.Done():
		return // Close closes every connection
	}
	pc.qc.CloseWithError(CodeNoError, reason)
}

// dropLocked takes an evicted connection out of every map; the caller
// closes it, and its serveConn lets it go.
func (t *QUIC) dropLocked(pc *peerConn) {
	t.budget.remove(pc)
	pc.dead = true
	t.unregisterLocked(pc)
}

// markDead takes a connection seen failing as a whole out of use, at
// once: quic-go reports the failure on streams before the connection's
// context ends.
func (t *QUIC) markDead(pc *peerConn) {
	t.mu.Lock()
	pc.dead = true
	t.unregisterLocked(pc)
	t.mu.Unlock()
}

// letGo forgets a connection that closed (or whose handshake failed
// after it was admitted) and frees its place.
func (t *QUIC) letGo(pc *peerConn) {
	t.mu.Lock()
	t.dropLocked(pc)
	delete(t.open, pc.qc)
	t.mu.Unlock()
}

// begin counts one request of ours on pc; it fails on a connection that
// is retired or dead, which the request must not use.
func (t *QUIC) begin(pc *peerConn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if pc.retired || pc.dead {
		return false
	}
	pc.inflight++
	return true
}

// end counts one request, ours or the peer's, as finished; ok says it
// completed, which makes the connection less idle.
func (t *QUIC) end(pc *peerConn, ok bool) {
	t.mu.Lock()
	t.endLocked(pc, ok)
	t.mu.Unlock()
}

func (t *QUIC) endLocked(pc *peerConn, ok bool) {
	pc.inflight--
	if ok {
		t.marks++
		pc.lastDone = t.marks
		pc.completed = true
	}
	t.signalLocked(pc)
}
