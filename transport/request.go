package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/flowmail/flowmail/block"
)

// dialCall is one dial that every request for the same peer waits on.
type dialCall struct {
	expect block.ID // the ID the dial checks for; zero when only the address is known
	done   chan struct{}
	pc     *peerConn
	err    error
}

// Why a request is tried again on another connection.
var (
	// errRetired: the connection found was retired (or died) before the
	// request went out on it; nothing was sent.
	errRetired = fmt.Errorf("%w: connection replaced", ErrUnreachable)
	// errConnGone marks a request that failed because its whole
	// connection ended (closed by either side, idle timeout, stateless
	// reset) rather than its stream.
	errConnGone = errors.New("connection ended")
)

// maxAttempts bounds the connections one request tries.
const maxAttempts = 4

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

// request tries req on the connection for c. It tries again, on the
// connection that replaces it, when the one found was retired before the
// request went out, and once when the connection ended under the request
// and either it was an old one found open (it may have died unseen:
// the peer restarted or let it idle out) or the peer closed it with
// 0x00 (it kept another connection with us). Requests are idempotent, so
// a retry is safe even if the peer saw the first.
func (t *QUIC) request(ctx context.Context, c Contact, req []byte) ([]byte, Peer, error) {
	if err := checkPayload(len(req)); err != nil {
		return nil, Peer{}, fmt.Errorf("request to %v: %w", c.Addr, err)
	}
	retried := false
	var err error
	var pc *peerConn
	for range maxAttempts {
		var reused bool
		if pc, reused, err = t.connFor(ctx, c); err != nil {
			return nil, Peer{}, err
		}
		var resp []byte
		resp, err = t.exchange(ctx, pc, req)
		switch {
		case err == nil:
			return resp, pc.peer, nil
		case errors.Is(err, errRetired):
			continue
		case errors.Is(err, errConnGone) && !retried && (reused || closedByPeerWith(err, CodeNoError)):
			t.log.Debug("request tried again on another connection", "peer", pc.peer.ID.Short(), "addr", pc.peer.Addr.String(), "err", err)
			retried = true
			continue
		}
		break
	}
	return nil, pc.peer, err
}

// closedByPeerWith reports whether err is the peer closing the
// connection with code.
func closedByPeerWith(err error, code quic.ApplicationErrorCode) bool {
	var ae *quic.ApplicationError
	return errors.As(err, &ae) && ae.Remote && ae.ErrorCode == code
}

// connGone reports whether err ended the whole connection rather than
// one stream.
func connGone(err error) bool {
	var (
		se *quic.StreamError
		ae *quic.ApplicationError
		te *quic.TransportError
		sr *quic.StatelessResetError
		it *quic.IdleTimeoutError
		ht *quic.HandshakeTimeoutError
	)
	if errors.As(err, &se) {
		return false
	}
	return errors.As(err, &ae) || errors.As(err, &te) || errors.As(err, &sr) || errors.As(err, &it) || errors.As(err, &ht)
}

// exchange runs one request on its own stream of pc.
func (t *QUIC) exchange(ctx context.Context, pc *peerConn, req []byte) ([]byte, error) {
	if !t.begin(pc) {
		return nil, errRetired
	}
	ok := false
	defer func() { t.end(pc, ok) }()
	deadline := time.Now().Add(t.cfg.RequestTimeout)
	callerFirst := false // the caller's deadline comes before RequestTimeout
	if d, has := ctx.Deadline(); has && d.Before(deadline) {
		deadline, callerFirst = d, true
	}
	sctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	failed := func(err error) error {
		rerr := t.requestError(ctx, pc, err)
		var ne net.Error
		switch {
		case ctx.Err() != nil || t.ctx.Err() != nil:
		case connGone(err):
			t.markDead(pc)
			return fmt.Errorf("%w: %w", errConnGone, rerr)
		case errors.As(err, &ne) && ne.Timeout() && !callerFirst:
			// No answer within RequestTimeout: the peer may have
			// restarted without our knowing (QUIC answers only packets of
			// some size with a stateless reset, so a small request on a
			// stale connection just goes unanswered). New requests take a
			// new connection; this one closes once drained.
			t.retire(pc, "a request timed out")
		}
		return rerr
	}
	s, err := pc.qc.OpenStreamSync(sctx)
	if err != nil {
		return nil, failed(err)
	}
	s.SetDeadline(deadline)
	// A caller that gives up aborts the stream, which ends the reads and
	// writes below at once.
	stop := context.AfterFunc(ctx, func() { abortStream(s, CodeNoError) })
	defer stop()
	// A request that fails for any reason (its deadline too) resets its
	// stream, so the responder stops and a late response is refused
	// rather than buffered: a frame this node refuses with its code,
	// anything else with 0x00.
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
	resp, err := readFrameFrom(s, MaxFrameSize, t.frames)
	if err != nil {
		return nil, aborted(err)
	}
	ok = true
	return resp, nil
}

// abortStream resets both directions of s with code.
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
		return fmt.Errorf("%w: %v closed the connection (code %#x: %s): %w", codeError(uint64(ae.ErrorCode)), addr, uint64(ae.ErrorCode), ae.ErrorMessage, err)
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
// is none; concurrent requests for the same peer (by ID or by address)
// share one dial. reused tells whether the connection was already open.
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
	var call *dialCall
	if !c.ID.IsZero() {
		call = t.dials[c.ID]
	}
	if d := t.dialsByAddr[c.Addr]; call == nil && d != nil && (d.expect.IsZero() || d.expect == c.ID) {
		call = d
	}
	if call == nil {
		call = &dialCall{expect: c.ID, done: make(chan struct{})}
		if !c.ID.IsZero() {
			t.dials[c.ID] = call
		}
		t.dialsByAddr[c.Addr] = call
		t.wg.Add(1)
		go t.dial(c, call)
	}
	t.mu.Unlock()
	select {
	case <-call.done:
		if call.err == nil && !c.ID.IsZero() && call.pc.peer.ID != c.ID {
			// We joined a dial by address that found another node there.
			return nil, false, fmt.Errorf("%w: dialed %s at %v, peer is %s", ErrWrongPeer, c.ID.Short(), c.Addr, call.pc.peer.ID.Short())
		}
		return call.pc, false, call.err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, false, fmt.Errorf("%w: %v: dial did not finish before the deadline: %w", ErrUnreachable, c.Addr, ctx.Err())
		}
		return nil, false, fmt.Errorf("request to %v: %w", c.Addr, ctx.Err())
	}
}

// dial runs one dial for everyone waiting on call.
func (t *QUIC) dial(c Contact, call *dialCall) {
	defer t.wg.Done()
	pc, err := t.dialPeer(c)
	if err != nil && t.cfg.Observer != nil {
		t.cfg.Observer.ConnChanged(ConnEvent{State: ConnFailed, Dir: Outgoing, Peer: c.ID, Addr: c.Addr, Err: err})
	}
	t.mu.Lock()
	if t.dials[c.ID] == call {
		delete(t.dials, c.ID)
	}
	if t.dialsByAddr[c.Addr] == call {
		delete(t.dialsByAddr, c.Addr)
	}
	t.mu.Unlock()
	call.pc, call.err = pc, err
	close(call.done)
}

// dialPeer takes an outbound place (evicting our idlest connection when
// the share is full), dials and runs the HELLO exchange.
func (t *QUIC) dialPeer(c Contact) (*peerConn, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, ErrClosed
	}
	victim, err := t.budget.reserveOut()
	if victim != nil {
		t.dropLocked(victim)
	}
	t.mu.Unlock()
	if victim != nil {
		t.log.Debug("closing an idle connection to dial another", "peer", victim.peer.ID.Short(), "addr", victim.peer.Addr.String())
		victim.qc.CloseWithError(CodeNoError, "idle: making room")
	}
	if err != nil {
		return nil, fmt.Errorf("%w: not dialing %v: %w", ErrOverloaded, c.Addr, err)
	}
	release := func() {
		t.mu.Lock()
		t.budget.releaseOut()
		t.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.DialTimeout)
	qc, err := t.tr.Dial(ctx, net.UDPAddrFromAddrPort(c.Addr), t.clientTLS, t.qconf)
	cancel()
	if err != nil {
		release()
		if t.ctx.Err() != nil {
			return nil, ErrClosed
		}
		var ae *quic.ApplicationError
		if errors.As(err, &ae) && ae.Remote {
			return nil, fmt.Errorf("%w: %v refused the connection (code %#x: %s)", codeError(uint64(ae.ErrorCode)), c.Addr, uint64(ae.ErrorCode), ae.ErrorMessage)
		}
		var te *quic.TransportError
		if errors.As(err, &te) && te.Remote && te.ErrorCode == quic.ConnectionRefused {
			return nil, fmt.Errorf("%w: %v refused the connection: %w", ErrOverloaded, c.Addr, err)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w: dialing %v: no answer within %v: %w", ErrUnreachable, c.Addr, t.cfg.DialTimeout, err)
		}
		return nil, fmt.Errorf("%w: dialing %v: %w", ErrUnreachable, c.Addr, err)
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		release()
		qc.CloseWithError(CodeShuttingDown, "shutting down")
		return nil, ErrClosed
	}
	t.open[qc] = struct{}{}
	t.mu.Unlock()
	pc, err := t.handshake(qc, Outgoing, c.ID, nil)
	if err != nil {
		t.mu.Lock()
		t.budget.releaseOut()
		delete(t.open, qc)
		t.mu.Unlock()
		return nil, err
	}
	return pc, nil
}
