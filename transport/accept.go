package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

// preKey is the context key under which an incoming connection's
// context carries its *preConn.
type preKey struct{}

// connContext runs on the first packet of every incoming connection,
// before any cryptography: it takes the connection's pre-HELLO place, or
// refuses it (quic-go answers CONNECTION_REFUSED).
func (t *QUIC) connContext(ctx context.Context, info *quic.ClientInfo) (context.Context, error) {
	addr, err := addrPortOf(info.RemoteAddr)
	if err != nil {
		return nil, err
	}
	p := &preConn{group: t.cfg.GroupOf(addr), ctx: ctx}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, ErrClosed
	}
	t.marks++
	p.seq = t.marks
	victim, err := t.budget.reservePre(p)
	t.preCount.Store(int64(t.budget.preCount()))
	if victim != nil {
		t.wg.Add(1)
		go t.closeEvicted(victim.qc, victim.group)
	}
	t.mu.Unlock()
	if err != nil {
		t.log.Debug("refusing connection", "addr", addr.String(), "reason", err)
		if t.cfg.Observer != nil {
			t.cfg.Observer.ConnChanged(ConnEvent{State: ConnFailed, Dir: Incoming, Addr: addr, Err: err})
		}
		return nil, fmt.Errorf("%w: %w", ErrOverloaded, err)
	}
	return context.WithValue(ctx, preKey{}, p), nil
}

// closeEvicted closes a connection that waited for its HELLO and lost
// its place to a newcomer.
func (t *QUIC) closeEvicted(qc *quic.Conn, g Group) {
	defer t.wg.Done()
	t.log.Debug("evicting a connection without HELLO", "addr", remoteAddr(qc).String(), "source", g.String())
	qc.CloseWithError(CodeOverloaded, "too many connections: no HELLO yet")
}

func (t *QUIC) acceptLoop() {
	defer t.wg.Done()
	for {
		qc, err := t.ln.Accept(t.ctx)
		if err != nil {
			return
		}
		p, _ := qc.Context().Value(preKey{}).(*preConn)
		t.mu.Lock()
		switch {
		case t.closed:
			t.mu.Unlock()
			qc.CloseWithError(CodeShuttingDown, "shutting down")
			continue
		case p == nil:
			t.mu.Unlock()
			qc.CloseWithError(CodeOverloaded, "too many connections")
			continue
		}
		victim, ok := t.budget.acceptPre(p, qc)
		if !ok {
			// Evicted before quic-go handed it over: its place is gone.
			t.mu.Unlock()
			qc.CloseWithError(CodeOverloaded, "too many connections")
			continue
		}
		t.preCount.Store(int64(t.budget.preCount()))
		if victim != nil {
			t.wg.Add(1)
			go t.closeEvicted(victim.qc, victim.group)
		}
		t.open[qc] = struct{}{}
		t.wg.Add(1)
		t.mu.Unlock()
		go t.acceptConn(qc, p)
	}
}

func (t *QUIC) acceptConn(qc *quic.Conn, p *preConn) {
	defer t.wg.Done()
	if _, err := t.handshake(qc, Incoming, block.ID{}, p); err != nil {
		t.mu.Lock()
		t.budget.releasePre(p)
		t.preCount.Store(int64(t.budget.preCount()))
		delete(t.open, qc)
		t.mu.Unlock()
		if t.cfg.Observer != nil {
			t.cfg.Observer.ConnChanged(ConnEvent{State: ConnFailed, Dir: Incoming, Addr: remoteAddr(qc), Err: err})
		}
	}
}

// handshake exchanges HELLOs on the connection's first stream: the
// dialer sends first, and the listener checks the dialer's HELLO, and
// admits the connection, before it answers with its own; so a dialer
// that has the listener's HELLO can count on being known. expect is the
// ID a dialer asked for, if any. On success the connection is admitted
// and served.
func (t *QUIC) handshake(qc *quic.Conn, dir Direction, expect block.ID, pre *preConn) (*peerConn, error) {
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
	pc := &peerConn{qc: qc, dir: dir, group: t.cfg.GroupOf(peer.Addr), peer: peer}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		qc.CloseWithError(CodeShuttingDown, "shutting down")
		return nil, ErrClosed
	}
	victim := t.admitLocked(pc, pre)
	t.mu.Unlock()
	if victim != nil {
		t.log.Debug("evicting a connection", "peer", victim.peer.ID.Short(), "addr", victim.peer.Addr.String(), "source", victim.group.String())
		victim.qc.CloseWithError(CodeOverloaded, "too many connections")
	}
	if dir == Incoming {
		if err := t.sendHello(s); err != nil {
			err = t.handshakeFailed(qc, err)
			t.letGo(pc)
			return nil, err
		}
	}
	if t.cfg.Observer != nil {
		t.cfg.Observer.ConnChanged(ConnEvent{State: ConnUp, Dir: pc.dir, Peer: pc.peer.ID, Addr: pc.peer.Addr})
	}
	t.wg.Add(1)
	go t.serveConn(pc)
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

// usableAdvertised returns the addresses of a HELLO that pass
// CheckPeerAddr, and logs (at debug: a peer choosing them must not flood
// the log) those it drops.
func (t *QUIC) usableAdvertised(id block.ID, from netip.AddrPort, addrs []netip.AddrPort) []netip.AddrPort {
	kept := addrs[:0]
	for _, a := range addrs {
		if err := CheckPeerAddr(a, t.loopback); err != nil {
			t.log.Debug("dropping an advertised address", "peer", id.Short(), "addr", from.String(), "reason", err.Error())
			continue
		}
		kept = append(kept, a)
	}
	return kept
}

// serveConn accepts request streams of one verified connection until it
// closes, each within the handler limits (node-wide and per source).
func (t *QUIC) serveConn(pc *peerConn) {
	defer t.wg.Done()
	for {
		s, err := pc.qc.AcceptStream(t.ctx)
		if err != nil {
			break
		}
		t.mu.Lock()
		err = t.budget.acquireHandler(pc.group)
		if err == nil {
			pc.inflight++
		}
		t.mu.Unlock()
		if err != nil {
			abortStream(s, CodeOverloaded)
			t.log.Debug("request refused", "peer", pc.peer.ID.Short(), "reason", err)
			continue
		}
		t.wg.Add(1)
		go t.serveStream(pc, s)
	}
	t.letGo(pc)
	if t.cfg.Observer != nil {
		t.cfg.Observer.ConnChanged(ConnEvent{State: ConnDown, Dir: pc.dir, Peer: pc.peer.ID, Addr: pc.peer.Addr, Err: context.Cause(pc.qc.Context())})
	}
}

// serveStream answers one request: its bytes must keep to the progress
// deadline, its answer to RequestTimeout.
func (t *QUIC) serveStream(pc *peerConn, s *quic.Stream) {
	defer t.wg.Done()
	ok := false
	defer func() {
		t.mu.Lock()
		t.budget.releaseHandler(pc.group)
		t.endLocked(pc, ok)
		t.mu.Unlock()
	}()
	start := time.Now()
	deadline := start.Add(t.cfg.RequestTimeout)
	s.SetWriteDeadline(deadline)
	var req, resp []byte
	err := func() error {
		var err error
		in := newPacedReader(s, start, t.cfg.FrameGrace, t.cfg.MinFrameRate, deadline)
		if req, err = readFrameFrom(in, MaxFrameSize, t.frames); err != nil {
			code, ours := frameErrorCode(err)
			if !ours {
				code = CodeOverloaded // too slow, or the peer gave up
			}
			abortStream(s, code)
			return err
		}
		h := t.handler.Load()
		if h == nil {
			abortStream(s, CodeOverloaded)
			return fmt.Errorf("%w: no handler yet", ErrOverloaded)
		}
		// The handler's context ends at the deadline, on Close, and when
		// the requester gives up (resets the stream).
		ctx, cancel := context.WithDeadline(t.ctx, deadline)
		stop := context.AfterFunc(s.Context(), cancel)
		resp = (*h)(ctx, pc.peer, req)
		stop()
		late := ctx.Err()
		cancel()
		switch {
		case t.ctx.Err() != nil:
			// Close cut the handler short; its answer may be partial.
			abortStream(s, CodeShuttingDown)
			resp = nil
			return ErrClosed
		case late != nil:
			abortStream(s, CodeOverloaded)
			resp = nil
			return fmt.Errorf("%w: no answer in time: %w", ErrOverloaded, late)
		}
		if err := checkPayload(len(resp)); err != nil {
			code := quic.StreamErrorCode(CodeMalformed)
			if errors.Is(err, ErrFrameTooLarge) {
				code = CodeFrameTooLarge
			}
			abortStream(s, code)
			resp = nil
			return fmt.Errorf("handler's response: %w", err)
		}
		if err := writeFrame(s, resp); err != nil {
			abortStream(s, CodeOverloaded)
			return err
		}
		return s.Close()
	}()
	ok = err == nil
	if err != nil {
		t.log.Debug("request failed", "peer", pc.peer.ID.Short(), "addr", pc.peer.Addr.String(), "err", err)
	}
	if t.cfg.Observer != nil {
		t.cfg.Observer.RequestDone(RequestEvent{Dir: Incoming, Peer: pc.peer.ID, Addr: pc.peer.Addr, Sent: len(resp), Received: len(req), Err: err, Duration: time.Since(start)})
	}
}
