package transport

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/flowmail/flowmail/internal/syncbuf"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"go.uber.org/goleak"

	"github.com/flowmail/flowmail/block"
)

const testNetwork = "flowmail-test"

// debugLogger writes a transport's log lines to l for assertions.
func debugLogger(l *syncbuf.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// quicNode is a QUIC transport under test with its log and observer.
type quicNode struct {
	*QUIC
	log *syncbuf.Buffer
	obs *countingObserver
}

func listenQUIC(t *testing.T, idn int, edit func(*QUICConfig)) *quicNode {
	t.Helper()
	n := &quicNode{log: &syncbuf.Buffer{}, obs: newCountingObserver()}
	cfg := QUICConfig{
		Identity:   testIdentity(t, idn),
		Network:    testNetwork,
		ListenAddr: "127.0.0.1:0",
		Handler:    echo,
		Logger:     debugLogger(n.log),
		Observer:   n.obs,
		// Hang guards only: a test that exercises a timeout sets its own,
		// and nothing here may depend on how busy the machine is.
		DialTimeout:      time.Minute,
		HandshakeTimeout: time.Minute,
		RequestTimeout:   2 * time.Minute,
		FrameGrace:       time.Minute,
	}
	if edit != nil {
		edit(&cfg)
	}
	q, err := ListenQUIC(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	n.QUIC = q
	return n
}

func TestQUICRequestsBothWays(t *testing.T) {
	adv := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.7:4433"), netip.MustParseAddrPort("[2001:db8::1]:4433")}
	var seen atomic.Pointer[Peer]
	a := listenQUIC(t, 1, func(c *QUICConfig) { c.Advertised = adv })
	b := listenQUIC(t, 2, func(c *QUICConfig) {
		c.Client = true
		c.Handler = func(ctx context.Context, from Peer, req []byte) []byte {
			seen.Store(&from)
			return echo(ctx, from, req)
		}
	})

	resp, p, err := a.Request(t.Context(), contactOf(b), []byte("hello b"))
	if err != nil {
		t.Fatal(err)
	}
	if string(resp) != "re:hello b" {
		t.Errorf("response %q", resp)
	}
	if p.ID != b.Self().ID || p.Addr != b.LocalAddr() || !p.Client || p.Pubkey == nil || p.Pubkey.ID != p.ID {
		t.Errorf("a sees b as %+v", p)
	}
	from := seen.Load()
	if from.ID != a.Self().ID || from.Addr != a.LocalAddr() || from.Client || len(from.Advertised) != 2 || from.Advertised[1] != adv[1] {
		t.Errorf("b's handler sees a as %+v: want a's ID, socket address and advertised addresses", from)
	}

	resp, p, err = b.Request(t.Context(), contactOf(a), []byte("hello a"))
	if err != nil || string(resp) != "re:hello a" || p.ID != a.Self().ID {
		t.Fatalf("b→a: %q, %s, %v", resp, p.ID.Short(), err)
	}
}

func TestQUICReusesOneConnectionPerPeer(t *testing.T) {
	a := listenQUIC(t, 1, nil)
	b := listenQUIC(t, 2, nil)
	// The first dial knows only the address; the HELLO tells the ID, and
	// requests by ID then use the same connection, in both directions.
	if _, _, err := a.Request(t.Context(), Contact{Addr: b.LocalAddr()}, []byte("x")); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, _, err := a.Request(t.Context(), contactOf(b), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := b.Request(t.Context(), contactOf(a), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if got := a.obs.connCount(ConnUp); got != 1 {
		t.Errorf("a opened %d connections, want 1", got)
	}
	if got := b.obs.connCount(ConnUp); got != 1 {
		t.Errorf("b saw %d connections come up, want 1 (it should reuse a's)", got)
	}
}

func TestQUICConcurrentRequestsShareOneDial(t *testing.T) {
	a := listenQUIC(t, 1, nil)
	b := listenQUIC(t, 2, nil)
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range 20 {
		wg.Go(func() {
			msg := fmt.Appendf(nil, "m%d", i)
			resp, _, err := a.Request(t.Context(), contactOf(b), msg)
			if err != nil || !bytes.Equal(resp, append([]byte("re:"), msg...)) {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d requests failed", failed.Load())
	}
	if got := a.obs.connCount(ConnUp); got != 1 {
		t.Errorf("20 concurrent first requests made %d connections, want 1", got)
	}
}

func TestQUICManyConcurrentRequests(t *testing.T) {
	const nodes, each = 4, 25
	qs := make([]*quicNode, nodes)
	for i := range qs {
		qs[i] = listenQUIC(t, 10+i, nil)
	}
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i, from := range qs {
		for j := range each {
			wg.Go(func() {
				to := qs[(i+1+j%(nodes-1))%nodes]
				msg := bytes.Repeat([]byte{byte(j)}, 1+j*997)
				resp, p, err := from.Request(t.Context(), contactOf(to), msg)
				if err != nil || !bytes.Equal(resp[3:], msg) || p.ID != to.Self().ID {
					t.Logf("%d→%s: %v", i, to.Self().ID.Short(), err)
					failed.Add(1)
				}
			})
		}
	}
	wg.Wait()
	if f := failed.Load(); f != 0 {
		t.Errorf("%d of %d requests failed", f, nodes*each)
	}
}

func TestQUICRefusesWrongExpectedID(t *testing.T) {
	a := listenQUIC(t, 1, nil)
	b := listenQUIC(t, 2, nil)
	_, _, err := a.Request(t.Context(), Contact{ID: testIdentity(t, 3).ID(), Addr: b.LocalAddr()}, []byte("x"))
	if !errors.Is(err, ErrWrongPeer) {
		t.Fatalf("got %v, want ErrWrongPeer", err)
	}
	if !strings.Contains(a.log.String(), "refusing peer") {
		t.Errorf("a did not log why it refused b:\n%s", a.log)
	}
}

func TestQUICRefusesWrongNetwork(t *testing.T) {
	a := listenQUIC(t, 1, nil)
	b := listenQUIC(t, 2, func(c *QUICConfig) { c.Network = "elsewhere" })
	_, _, err := a.Request(t.Context(), contactOf(b), []byte("x"))
	if !errors.Is(err, ErrWrongNetwork) {
		t.Fatalf("got %v, want ErrWrongNetwork", err)
	}
	if log := b.log.String(); !strings.Contains(log, "refusing peer") || !strings.Contains(log, "another network") {
		t.Errorf("b did not log the network mismatch:\n%s", log)
	}
}

// rawClient dials target with a hand-built TLS certificate for certKey,
// so a test can present any HELLO it likes.
func rawClient(t *testing.T, target netip.AddrPort, certKey ed25519.PrivateKey) *quic.Conn {
	t.Helper()
	cert, err := certificate(certKey)
	if err != nil {
		t.Fatal(err)
	}
	_, clientTLS := tlsConfigs(cert)
	udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: udp}
	t.Cleanup(func() { tr.Close(); udp.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // hang guard
	defer cancel()
	qc, err := tr.Dial(ctx, net.UDPAddrFromAddrPort(target), clientTLS, &quic.Config{HandshakeIdleTimeout: time.Minute, MaxIdleTimeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { qc.CloseWithError(0, "") })
	return qc
}

// exchangeRaw sends payload as written (no framing) on a new stream and
// returns the frame that comes back.
func exchangeRaw(t *testing.T, qc *quic.Conn, payload []byte) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // hang guard
	defer cancel()
	s, err := qc.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	s.SetDeadline(time.Now().Add(time.Minute))
	if _, err := s.Write(payload); err != nil {
		return nil, err
	}
	s.Close()
	return readFrame(s, MaxFrameSize)
}

func helloOf(t *testing.T, pubkey []byte, network string) []byte {
	t.Helper()
	b, err := (&Hello{Network: network, Pubkey: pubkey}).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func appCode(err error) (quic.ApplicationErrorCode, bool) {
	var ae *quic.ApplicationError
	if errors.As(err, &ae) && ae.Remote {
		return ae.ErrorCode, true
	}
	return 0, false
}

func TestQUICListenerRefusesLyingDialer(t *testing.T) {
	honest, other := testIdentity(t, 1), testIdentity(t, 2)
	corrupt := bytes.Clone(other.Public().Block)
	corrupt[block.PubkeySize-1] ^= 1
	tests := []struct {
		name    string
		certKey ed25519.PrivateKey
		hello   []byte
		code    quic.ApplicationErrorCode
		logs    string
	}{
		{"AnotherIdentitysBlock", honest.SigningKey(), helloOf(t, other.Public().Block, testNetwork), CodeHandshake, "differs from the TLS certificate"},
		{"CertificateOfAnotherKey", other.SigningKey(), helloOf(t, honest.Public().Block, testNetwork), CodeHandshake, "differs from the TLS certificate"},
		{"BadSignature", other.SigningKey(), helloOf(t, corrupt, testNetwork), CodeHandshake, "pubkey block"},
		{"WrongNetwork", honest.SigningKey(), helloOf(t, honest.Public().Block, "elsewhere"), CodeWrongNetwork, "another network"},
		{"MalformedHello", honest.SigningKey(), append(helloOf(t, honest.Public().Block, testNetwork), 0), CodeHandshake, "trailing bytes"},
		{"OversizedHello", honest.SigningKey(), make([]byte, maxHelloSize+1), CodeHandshake, "frame too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := listenQUIC(t, 3, nil)
			qc := rawClient(t, b.LocalAddr(), tt.certKey)
			_, err := exchangeRaw(t, qc, appendFrame(nil, tt.hello))
			if code, ok := appCode(err); !ok || code != tt.code {
				t.Fatalf("HELLO exchange ended with %v, want the connection closed with code %#x", err, tt.code)
			}
			log := b.log.String()
			if !strings.Contains(log, "level=WARN msg=\"refusing peer\"") || !strings.Contains(log, tt.logs) {
				t.Errorf("b's log does not say why (%q):\n%s", tt.logs, log)
			}
			if got := b.obs.connCount(ConnUp); got != 0 {
				t.Errorf("refused connection counted as up")
			}
		})
	}
}

func TestQUICDialerRefusesLyingListener(t *testing.T) {
	other := testIdentity(t, 2)
	// The liar's certificate is its own key, but its HELLO carries the
	// pubkey block of `other`.
	liarKey := testIdentity(t, 4).SigningKey()
	cert, err := certificate(liarKey)
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, _ := tlsConfigs(cert)
	udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: udp}
	ln, err := tr.Listen(serverTLS, &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	closedWith := make(chan error, 1)
	go func() {
		qc, err := ln.Accept(t.Context())
		if err != nil {
			closedWith <- err
			return
		}
		s, err := qc.AcceptStream(t.Context())
		if err == nil {
			readFrame(s, maxHelloSize)
			writeFrame(s, helloOf(t, other.Public().Block, testNetwork))
			s.Close()
		}
		<-qc.Context().Done()
		closedWith <- context.Cause(qc.Context())
	}()
	defer func() { ln.Close(); tr.Close(); udp.Close() }()

	a := listenQUIC(t, 1, nil)
	_, _, err = a.Request(t.Context(), Contact{Addr: netip.MustParseAddrPort(udp.LocalAddr().String())}, []byte("x"))
	if !errors.Is(err, ErrHandshake) {
		t.Fatalf("got %v, want ErrHandshake", err)
	}
	if code, ok := appCode(<-closedWith); !ok || code != CodeHandshake {
		t.Errorf("liar's connection closed without code %#x", CodeHandshake)
	}
	if !strings.Contains(a.log.String(), "differs from the TLS certificate") {
		t.Errorf("a did not log why:\n%s", a.log)
	}
}

// handshakenClient is a raw connection that passed the HELLO exchange
// honestly, for sending hand-made frames.
func handshakenClient(t *testing.T, target *quicNode, idn int) *quic.Conn {
	t.Helper()
	id := testIdentity(t, idn)
	qc := rawClient(t, target.LocalAddr(), id.SigningKey())
	if _, err := exchangeRaw(t, qc, appendFrame(nil, helloOf(t, id.Public().Block, testNetwork))); err != nil {
		t.Fatalf("honest HELLO refused: %v", err)
	}
	return qc
}

func streamCode(err error) (quic.StreamErrorCode, bool) {
	var se *quic.StreamError
	if errors.As(err, &se) && se.Remote {
		return se.ErrorCode, true
	}
	return 0, false
}

func TestQUICBadFrameResetsOnlyItsStream(t *testing.T) {
	b := listenQUIC(t, 2, nil)
	a := listenQUIC(t, 1, nil)
	qc := handshakenClient(t, b, 3)
	header := func(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }
	tests := []struct {
		name string
		raw  []byte
		code quic.StreamErrorCode
	}{
		{"Oversized", append(header(MaxFrameSize+1), 1, 2, 3), CodeFrameTooLarge},
		{"HugeLength", header(0xffffffff), CodeFrameTooLarge},
		{"ZeroLength", header(0), CodeMalformed},
		{"Truncated", append(header(10), 1, 2, 3), CodeMalformed},
		{"TrailingBytes", append(appendFrame(nil, []byte("x")), 9), CodeMalformed},
		{"ShortHeader", []byte{0, 0}, CodeMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := exchangeRaw(t, qc, tt.raw)
			if code, ok := streamCode(err); !ok || code != tt.code {
				t.Fatalf("got %v, want the stream reset with code %#x", err, tt.code)
			}
			// The same connection and other peers go on.
			if resp, err := exchangeRaw(t, qc, appendFrame(nil, []byte("ok?"))); err != nil || string(resp) != "re:ok?" {
				t.Errorf("next request on the same connection: %q, %v", resp, err)
			}
			if _, _, err := a.Request(t.Context(), contactOf(b), []byte("other peer")); err != nil {
				t.Errorf("another peer's request: %v", err)
			}
		})
	}
}

func TestQUICOversizedResponseFrameIsRefusedByRequester(t *testing.T) {
	// A lying responder's frame header claims more than MaxFrameSize: the
	// requester refuses before reading it.
	b := listenQUIC(t, 2, nil)
	qc := handshakenClient(t, b, 3)
	served := make(chan error, 1)
	go func() {
		s, err := qc.AcceptStream(t.Context())
		if err != nil {
			served <- err
			return
		}
		readFrame(s, MaxFrameSize)
		s.Write(binary.BigEndian.AppendUint32(nil, MaxFrameSize+1))
		_, err = s.Write(make([]byte, 1000))
		s.Close()
		served <- err
	}()
	_, _, err := b.Request(t.Context(), Contact{ID: testIdentity(t, 3).ID()}, []byte("x"))
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("got %v, want ErrFrameTooLarge", err)
	}
	<-served
}

func TestQUICResponseErrors(t *testing.T) {
	tests := []struct {
		name    string
		handler Handler
		req     []byte
		want    error
	}{
		{"EmptyResponseIsRefusal", func(context.Context, Peer, []byte) []byte { return nil }, []byte("x"), ErrRefused},
		{"OversizedResponse", func(context.Context, Peer, []byte) []byte { return make([]byte, MaxFrameSize+1) }, []byte("x"), ErrFrameTooLarge},
		{"EmptyRequest", echo, nil, ErrEmptyPayload},
		{"OversizedRequest", echo, make([]byte, MaxFrameSize+1), ErrFrameTooLarge},
		{"NoHandlerIsOverloaded", nil, []byte("x"), ErrOverloaded},
	}
	a := listenQUIC(t, 1, nil)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := listenQUIC(t, 20+i, func(c *QUICConfig) { c.Handler = tt.handler })
			_, _, err := a.Request(t.Context(), contactOf(b), tt.req)
			if !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestQUICLargestFrameBothWays(t *testing.T) {
	a := listenQUIC(t, 1, nil)
	b := listenQUIC(t, 2, func(c *QUICConfig) {
		c.Handler = func(_ context.Context, _ Peer, req []byte) []byte { return bytes.Clone(req) }
	})
	req := bytes.Repeat([]byte("0123456789abcdef"), MaxFrameSize/16)
	resp, _, err := a.Request(t.Context(), contactOf(b), req)
	if err != nil || !bytes.Equal(resp, req) {
		t.Fatalf("MaxFrameSize round trip: %d bytes back, %v", len(resp), err)
	}
}

func TestQUICHandlerLimitResetsExtraStreams(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	a := listenQUIC(t, 1, nil)
	b := listenQUIC(t, 2, func(c *QUICConfig) {
		c.MaxHandlers = 1
		c.Handler = func(ctx context.Context, from Peer, req []byte) []byte {
			started <- struct{}{}
			<-release
			return echo(ctx, from, req)
		}
	})
	first := make(chan error, 1)
	go func() {
		_, _, err := a.Request(t.Context(), contactOf(b), []byte("slow"))
		first <- err
	}()
	<-started
	if _, _, err := a.Request(t.Context(), contactOf(b), []byte("x")); !errors.Is(err, ErrOverloaded) {
		t.Errorf("second request while the only handler slot is busy: %v, want ErrOverloaded", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("first request: %v", err)
	}
}

func TestQUICRequestTimeouts(t *testing.T) {
	tests := []struct {
		name               string
		requester, handler time.Duration // RequestTimeout of each side
		want, handlerEnd   error
	}{
		// The requester gives up first: it resets the stream, and the
		// handler's context ends although its own deadline is far.
		{"RequesterResetsStreamAndEndsHandler", 300 * time.Millisecond, 10 * time.Minute, context.DeadlineExceeded, context.Canceled},
		// The responder's deadline passes first: the handler's context
		// ends and the stream is reset as overloaded.
		{"ResponderGivesUpAsOverloaded", 10 * time.Minute, 300 * time.Millisecond, ErrOverloaded, context.DeadlineExceeded},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			handlerDone := make(chan error, 1)
			a := listenQUIC(t, 1, func(c *QUICConfig) { c.RequestTimeout = tt.requester })
			b := listenQUIC(t, 30+i, func(c *QUICConfig) {
				c.RequestTimeout = tt.handler
				c.Handler = func(ctx context.Context, _ Peer, _ []byte) []byte {
					<-ctx.Done()
					handlerDone <- ctx.Err()
					return []byte("late")
				}
			})
			if _, _, err := a.Request(t.Context(), contactOf(b), []byte("x")); !errors.Is(err, tt.want) {
				t.Errorf("request: %v, want %v", err, tt.want)
			}
			if err := <-handlerDone; !errors.Is(err, tt.handlerEnd) {
				t.Errorf("handler context ended with %v, want %v", err, tt.handlerEnd)
			}
		})
	}
}

func TestQUICCallerCancelEndsRequest(t *testing.T) {
	a := listenQUIC(t, 1, nil)
	entered := make(chan struct{})
	b := listenQUIC(t, 2, func(c *QUICConfig) {
		c.Handler = func(ctx context.Context, _ Peer, _ []byte) []byte {
			close(entered)
			<-ctx.Done()
			return []byte("late")
		}
	})
	ctx, cancel := context.WithCancel(t.Context())
	go func() { <-entered; cancel() }()
	if _, _, err := a.Request(ctx, contactOf(b), []byte("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want Canceled", err)
	}
}

func TestQUICDeadAddressFailsWithinDialTimeout(t *testing.T) {
	// A socket that reads and drops everything: a peer that never answers.
	hole, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	var drained sync.WaitGroup
	drained.Go(func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := hole.ReadFrom(buf); err != nil {
				return
			}
		}
	})
	defer func() { hole.Close(); drained.Wait() }()

	const dialTimeout = 400 * time.Millisecond
	a := listenQUIC(t, 1, func(c *QUICConfig) { c.DialTimeout = dialTimeout })
	start := time.Now()
	_, _, err = a.Request(t.Context(), Contact{Addr: netip.MustParseAddrPort(hole.LocalAddr().String())}, []byte("x"))
	elapsed := time.Since(start)
	if !errors.Is(err, ErrUnreachable) {
		t.Errorf("got %v, want ErrUnreachable", err)
	}
	if elapsed < dialTimeout {
		t.Errorf("failed after %v, before the dial timeout %v", elapsed, dialTimeout)
	}
	if got := a.obs.connCount(ConnFailed); got != 1 {
		t.Errorf("observer saw %d failed dials, want 1", got)
	}
}

func TestQUICRedialsAfterPeerRestarts(t *testing.T) {
	a := listenQUIC(t, 1, nil)
	b := listenQUIC(t, 2, nil)
	addr := b.LocalAddr()
	if _, _, err := a.Request(t.Context(), contactOf(b), []byte("x")); err != nil {
		t.Fatal(err)
	}

	// Orderly: b closes its connections with CodeShuttingDown. Whether or
	// not a has seen the close yet, its request fails as unreachable (the
	// short deadline ends the redial to nobody), and the dead connection
	// is never used again: quic-go reports the close on streams before it
	// ends the connection's context, so a must judge by the error.
	b.Close()
	gone, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	if _, _, err := a.Request(gone, contactOf(b), []byte("x")); !errors.Is(err, ErrUnreachable) {
		t.Errorf("request to a closed node: %v, want ErrUnreachable", err)
	}
	cancel()
	b2 := listenQUIC(t, 2, func(c *QUICConfig) { c.ListenAddr = addr.String() })
	if _, _, err := a.Request(t.Context(), contactOf(b2), []byte("x")); err != nil {
		t.Fatalf("after b restarted: %v", err)
	}

	// Crash: b2's socket vanishes without a CONNECTION_CLOSE. The restarted
	// node answers the stale connection with a stateless reset, and the
	// request goes through on a fresh connection. (quic-go answers only
	// packets over 42 bytes so: the request is made big enough. A small
	// one would go unanswered until RequestTimeout, see
	// TestQUICRequestTimeoutRetiresStaleConnection.)
	b2.tr.Close()
	b2.udp.Close()
	b3 := listenQUIC(t, 2, func(c *QUICConfig) { c.ListenAddr = addr.String() })
	if _, _, err := a.Request(t.Context(), contactOf(b3), bytes.Repeat([]byte("x"), 100)); err != nil {
		t.Fatalf("after b crashed and restarted: %v", err)
	}
	if got := a.obs.connCount(ConnUp); got != 3 {
		t.Errorf("a opened %d connections, want 3 (one per incarnation of b)", got)
	}
}

func TestQUICCloseStopsEverything(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	a := listenQUIC(t, 1, nil)
	handlerEnded := make(chan error, 1)
	entered := make(chan struct{})
	b := listenQUIC(t, 2, func(c *QUICConfig) {
		c.Handler = func(ctx context.Context, _ Peer, _ []byte) []byte {
			close(entered)
			<-ctx.Done()
			handlerEnded <- ctx.Err()
			return []byte("bye")
		}
	})
	inFlight := make(chan error, 1)
	go func() {
		_, _, err := a.Request(t.Context(), contactOf(b), []byte("x"))
		inFlight <- err
	}()
	<-entered
	if _, _, err := b.Request(t.Context(), contactOf(a), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := <-handlerEnded; !errors.Is(err, context.Canceled) {
		t.Errorf("handler context: %v, want cancelled by Close", err)
	}
	if err := <-inFlight; !errors.Is(err, ErrUnreachable) {
		t.Errorf("a's request in flight: %v, want ErrUnreachable (b shut down)", err)
	}
	if _, _, err := b.Request(t.Context(), contactOf(a), []byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Request after Close: %v, want ErrClosed", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	a.Close()
	if got := b.obs.connCount(ConnDown); got != 1 {
		t.Errorf("b saw %d connections go down, want 1", got)
	}
}

func TestQUICUsesGivenPacketConn(t *testing.T) {
	udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	b := listenQUIC(t, 2, func(c *QUICConfig) { c.PacketConn = udp; c.ListenAddr = "" })
	a := listenQUIC(t, 1, nil)
	if b.LocalAddr().String() != udp.LocalAddr().String() {
		t.Errorf("LocalAddr %v, socket %v", b.LocalAddr(), udp.LocalAddr())
	}
	if _, _, err := a.Request(t.Context(), contactOf(b), []byte("x")); err != nil {
		t.Fatal(err)
	}
	b.Close()
	// The caller's socket stays open for its owner.
	if err := udp.SetReadDeadline(time.Now()); err != nil {
		t.Errorf("socket closed by Close: %v", err)
	}
}

func TestListenQUICRejectsBadConfig(t *testing.T) {
	id := testIdentity(t, 1)
	tests := []struct {
		name string
		cfg  QUICConfig
	}{
		{"NoIdentity", QUICConfig{Network: "n", ListenAddr: "127.0.0.1:0"}},
		{"NoNetwork", QUICConfig{Identity: id, ListenAddr: "127.0.0.1:0"}},
		{"LongNetwork", QUICConfig{Identity: id, Network: strings.Repeat("n", MaxNetworkName+1), ListenAddr: "127.0.0.1:0"}},
		{"NoAddress", QUICConfig{Identity: id, Network: "n"}},
		{"TooManyAdvertised", QUICConfig{Identity: id, Network: "n", ListenAddr: "127.0.0.1:0", Advertised: make([]netip.AddrPort, MaxAdvertised+1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if q, err := ListenQUIC(t.Context(), tt.cfg); err == nil {
				q.Close()
				t.Error("accepted")
			}
		})
	}
}

func TestQUICSilentDialerIsDroppedAtHandshakeTimeout(t *testing.T) {
	b := listenQUIC(t, 2, func(c *QUICConfig) { c.HandshakeTimeout = 300 * time.Millisecond })
	qc := rawClient(t, b.LocalAddr(), testIdentity(t, 3).SigningKey())
	select {
	case <-qc.Context().Done():
	case <-time.After(2 * time.Minute):
		t.Fatal("hang guard: connection without a HELLO still open after 2 minutes")
	}
	if code, ok := appCode(context.Cause(qc.Context())); !ok || code != CodeHandshake {
		t.Errorf("closed with %v, want code %#x", context.Cause(qc.Context()), CodeHandshake)
	}
}

// TestQUICRedialsAfterIdleTimeout needs quic-go's minimum idle timeout
// (5 s); TestQUICRedialsAfterPeerRestarts covers redialing in the default
// suite.
func TestQUICRedialsAfterIdleTimeout(t *testing.T) {
	if os.Getenv("FLOWMAIL_LONG") != "1" {
		t.Skip("set FLOWMAIL_LONG=1: waits for a 5 s idle timeout")
	}
	down := make(chan struct{}, 1)
	a := listenQUIC(t, 1, func(c *QUICConfig) {
		c.IdleTimeout = 5 * time.Second
		c.Observer = connDownNotifier(down)
	})
	b := listenQUIC(t, 2, func(c *QUICConfig) { c.IdleTimeout = 5 * time.Second })
	if _, _, err := a.Request(t.Context(), contactOf(b), []byte("x")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-down:
	case <-time.After(2 * time.Minute):
		t.Fatal("hang guard: idle connection still open after 2 minutes")
	}
	if _, _, err := a.Request(t.Context(), contactOf(b), []byte("x")); err != nil {
		t.Fatalf("after the idle timeout: %v", err)
	}
}

type connDownNotifier chan struct{}

func (connDownNotifier) RequestDone(RequestEvent) {}
func (n connDownNotifier) ConnChanged(ev ConnEvent) {
	if ev.State == ConnDown {
		select {
		case n <- struct{}{}:
		default:
		}
	}
}
