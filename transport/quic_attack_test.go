package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/flowmail/flowmail/identity"
)

// The tests in this file attack one node over real QUIC on loopback and
// count what honest peers get done meanwhile: they assert successes,
// never durations (the only timers are generous hang guards).

// attack runs a test's attackers: each owns one UDP socket for the whole
// test (so no honest node can get its port later) that counts against
// one of a few sources, as hosts of a few /24s would.
type attack struct {
	t       *testing.T
	sources []Group
	ports   sync.Map // uint16 → Group
	stop    chan struct{}
	wg      sync.WaitGroup

	evicted  atomic.Int64 // attacker connections the target closed with 0x03 or refused
	overload atomic.Int64 // attacker streams reset with 0x03
}

func newAttack(t *testing.T, sources int) *attack {
	a := &attack{t: t, stop: make(chan struct{})}
	for i := range sources {
		a.sources = append(a.sources, Group{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i), 0}), 24)})
	}
	t.Cleanup(a.halt)
	return a
}

// groupOf is the target's GroupOf: attackers' sockets by their source,
// everyone else as by default.
func (a *attack) groupOf(addr netip.AddrPort) Group {
	if g, ok := a.ports.Load(addr.Port()); ok {
		return g.(Group)
	}
	return DefaultGroup(addr)
}

// halt stops every attacker and waits for them.
func (a *attack) halt() {
	select {
	case <-a.stop:
	default:
		close(a.stop)
	}
	a.wg.Wait()
}

func (a *attack) stopped() bool {
	select {
	case <-a.stop:
		return true
	default:
		return false
	}
}

// attacker is one attacking socket.
type attacker struct {
	a   *attack
	tr  *quic.Transport
	ctx context.Context // ends when the attack stops
}

// run starts n attackers spread over the sources; each runs body until
// the attack stops.
func (a *attack) run(n int, body func(at *attacker, i int)) {
	for i := range n {
		udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
		if err != nil {
			a.t.Fatal(err)
		}
		a.ports.Store(uint16(udp.LocalAddr().(*net.UDPAddr).Port), a.sources[i%len(a.sources)])
		ctx, cancel := context.WithCancel(context.Background())
		at := &attacker{a: a, tr: &quic.Transport{Conn: udp}, ctx: ctx}
		a.wg.Go(func() {
			defer func() { at.tr.Close(); udp.Close() }()
			// Each attacker reopens at most every 25 ms: hard enough to
			// keep every limit full, gentle on a shared test machine.
			pace := time.NewTicker(25 * time.Millisecond)
			defer pace.Stop()
			for !a.stopped() {
				body(at, i)
				select {
				case <-pace.C:
				case <-a.stop:
				}
			}
		})
		a.wg.Go(func() {
			<-a.stop
			cancel()
		})
	}
}

// dial opens a connection to target with id's certificate and, when
// hello is set, passes the HELLO exchange honestly.
func (at *attacker) dial(target netip.AddrPort, id *identity.Identity, hello bool) (*quic.Conn, error) {
	cert, err := certificate(id.SigningKey())
	if err != nil {
		return nil, err
	}
	_, clientTLS := tlsConfigs(cert)
	qc, err := at.tr.Dial(at.ctx, net.UDPAddrFromAddrPort(target), clientTLS, &quic.Config{HandshakeIdleTimeout: time.Minute, MaxIdleTimeout: 2 * time.Minute})
	if err != nil {
		at.count(err)
		return nil, err
	}
	if !hello {
		return qc, nil
	}
	s, err := qc.OpenStreamSync(at.ctx)
	if err == nil {
		h, _ := (&Hello{Network: testNetwork, Pubkey: id.Public().Block}).Append(nil)
		if err = writeFrame(s, h); err == nil {
			s.Close()
			_, err = readFrame(s, maxHelloSize)
		}
	}
	if err != nil {
		at.count(err)
		qc.CloseWithError(0, "")
		return nil, err
	}
	return qc, nil
}

// hold keeps qc open until the target closes it or the attack stops.
func (at *attacker) hold(qc *quic.Conn) {
	select {
	case <-qc.Context().Done():
		at.count(context.Cause(qc.Context()))
	case <-at.ctx.Done():
		qc.CloseWithError(0, "")
	}
}

// count notes that the target evicted, refused or reset the attacker.
func (at *attacker) count(err error) {
	var te *quic.TransportError
	if code, ok := appCode(err); ok && code == CodeOverloaded || errors.As(err, &te) && te.ErrorCode == quic.ConnectionRefused {
		at.a.evicted.Add(1)
	}
	if code, ok := streamCode(err); ok && code == CodeOverloaded {
		at.a.overload.Add(1)
	}
}

// waitFor polls cond on the target's state until it holds; the guard
// only stops a hung test.
func waitFor(t *testing.T, q *QUIC, what string, cond func(b *budget) bool) {
	t.Helper()
	guard := time.After(2 * time.Minute)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		q.mu.Lock()
		ok := cond(q.budget)
		q.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-tick.C:
		case <-guard:
			t.Fatalf("hang guard: still waiting for %s", what)
		}
	}
}

// honestLoad is what the tests ask of honest peers while an attack
// runs: a peer connected before it, newcomers, and the target's own
// dials. It returns how many of each succeeded.
type honestLoad struct {
	connected, newcomers, dials int
}

func (h honestLoad) run(t *testing.T, target *quicNode, connected *quicNode, firstID int) (got honestLoad) {
	t.Helper()
	for i := range h.connected {
		if _, _, err := connected.Request(t.Context(), contactOf(target), fmt.Appendf(nil, "connected %d", i)); err != nil {
			t.Logf("connected peer, request %d: %v", i, err)
			continue
		}
		got.connected++
	}
	for i := range h.newcomers {
		n := listenQUIC(t, firstID+i, nil)
		if _, _, err := n.Request(t.Context(), contactOf(target), []byte("newcomer")); err != nil {
			t.Logf("newcomer %d: %v", i, err)
		} else {
			got.newcomers++
		}
		n.Close()
	}
	for i := range h.dials {
		n := listenQUIC(t, firstID+h.newcomers+i, nil)
		if _, _, err := target.Request(t.Context(), contactOf(n), []byte("dial out")); err != nil {
			t.Logf("target's dial %d: %v", i, err)
		} else {
			got.dials++
		}
	}
	return got
}

func (h honestLoad) check(t *testing.T, got honestLoad) {
	t.Helper()
	if got != h {
		t.Errorf("honest work done during the attack: %+v of %+v", got, h)
	}
}

// throwaways returns n identities for attackers, made before the
// attack starts.
func throwaways(t *testing.T, n int) []*identity.Identity {
	ids := make([]*identity.Identity, n)
	for i := range ids {
		ids[i] = testIdentity(t, 3000+i)
	}
	return ids
}

func TestQUICConnectionFloodLeavesRoomForHonestPeers(t *testing.T) {
	// Throwaway identities from three sources dial, pass HELLO and hold
	// their connections, reopening each as soon as it is closed.
	a := newAttack(t, 3)
	defer a.halt()
	ids := throwaways(t, 48)
	target := listenQUIC(t, 1, func(c *QUICConfig) {
		c.MaxInbound, c.MaxInboundPerGroup, c.MaxOutbound = 8, 4, 3
		c.GroupOf = a.groupOf
	})
	connected := listenQUIC(t, 2, nil)
	if _, _, err := connected.Request(t.Context(), contactOf(target), []byte("before")); err != nil {
		t.Fatal(err)
	}
	var next atomic.Int64
	a.run(9, func(at *attacker, _ int) {
		if qc, err := at.dial(target.LocalAddr(), ids[next.Add(1)%int64(len(ids))], true); err == nil {
			at.hold(qc)
		}
	})
	waitFor(t, target.QUIC, "the flood to fill the inbound share", func(b *budget) bool {
		return len(b.in) == 8
	})
	want := honestLoad{connected: 10, newcomers: 6, dials: 3}
	want.check(t, want.run(t, target, connected, 100))
	if a.evicted.Load() == 0 {
		t.Error("no attacker connection was evicted: the flood never met the limits")
	}
}

func TestQUICFloodWithoutHelloLeavesRoomForNewcomers(t *testing.T) {
	// Bare QUIC connections that never send a HELLO, from four sources,
	// reopened as soon as they are closed.
	a := newAttack(t, 4)
	defer a.halt()
	ids := throwaways(t, 12)
	target := listenQUIC(t, 1, func(c *QUICConfig) {
		c.MaxHandshakes, c.MaxHandshakesPerGroup = 8, 3
		c.GroupOf = a.groupOf
	})
	connected := listenQUIC(t, 2, nil)
	if _, _, err := connected.Request(t.Context(), contactOf(target), []byte("before")); err != nil {
		t.Fatal(err)
	}
	a.run(12, func(at *attacker, i int) {
		if qc, err := at.dial(target.LocalAddr(), ids[i], false); err == nil {
			at.hold(qc)
		}
	})
	waitFor(t, target.QUIC, "the flood to fill the pre-HELLO budget", func(b *budget) bool {
		return b.accepted == 8
	})
	want := honestLoad{connected: 10, newcomers: 6, dials: 2}
	want.check(t, want.run(t, target, connected, 100))
	if a.evicted.Load() == 0 {
		t.Error("no attacker connection was evicted or refused: the flood never met the limits")
	}
}

// streams keeps n streams of qc busy with use until the attack stops
// or qc closes: each stream use ends (the target reset it, say) is
// counted, aborted, and replaced at the next tick.
func (at *attacker) streams(qc *quic.Conn, n int, tick time.Duration, use func(s *quic.Stream, tick <-chan time.Time) error) {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			ticker := time.NewTicker(tick)
			defer ticker.Stop()
			for at.ctx.Err() == nil && qc.Context().Err() == nil {
				s, err := qc.OpenStreamSync(at.ctx)
				if err != nil {
					return
				}
				stop := context.AfterFunc(at.ctx, func() { abortStream(s, 0) })
				at.count(use(s, ticker.C))
				stop()
				abortStream(s, 0)
				select {
				case <-ticker.C:
				case <-at.ctx.Done():
				}
			}
		})
	}
	wg.Wait()
}

// slowloris announces length bytes on a stream and then trickles one
// byte per tick, as long as the target keeps the stream.
func slowloris(length uint32) func(s *quic.Stream, tick <-chan time.Time) error {
	return func(s *quic.Stream, tick <-chan time.Time) error {
		_, err := s.Write(binary.BigEndian.AppendUint32(nil, length))
		for err == nil {
			select {
			case <-tick:
				_, err = s.Write([]byte{'x'})
			case <-s.Context().Done():
				// The target reset the stream; reading says with which code.
				if _, err = s.Read(make([]byte, 1)); err == nil {
					err = context.Cause(s.Context())
				}
			}
		}
		return err
	}
}

// streamFlood has one verified attacker connection per identity, all
// of source 0, keep streams streams busy with use; once they hold their
// source's handler cap (8 in these tests), honest peers must be served
// in full, and some attacker stream must have been refused.
func streamFlood(t *testing.T, a *attack, target, connected *quicNode, ids []*identity.Identity, streams int, tick time.Duration, use func(*quic.Stream, <-chan time.Time) error) {
	t.Helper()
	a.run(len(ids), func(at *attacker, i int) {
		qc, err := at.dial(target.LocalAddr(), ids[i], true)
		if err != nil {
			return
		}
		at.streams(qc, streams, tick, use)
		qc.CloseWithError(0, "")
	})
	waitFor(t, target.QUIC, "the attackers to take their source's handlers", func(b *budget) bool {
		return b.handlerGroups[a.sources[0]] >= 8
	})
	want := honestLoad{connected: 10, newcomers: 4}
	want.check(t, want.run(t, target, connected, 100))
	if a.overload.Load() == 0 {
		t.Error("no attacker stream was refused: the attack never met the limits")
	}
}

func TestQUICSlowlorisLeavesRoomForHonestPeers(t *testing.T) {
	for _, tt := range []struct {
		name   string
		length uint32
	}{{"SmallAnnouncedLength", 1000}, {"MaximalAnnouncedLength", MaxFrameSize}} {
		t.Run(tt.name, func(t *testing.T) {
			a := newAttack(t, 1)
			defer a.halt()
			ids := throwaways(t, 2)
			var mu sync.Mutex
			largest := 0
			target := listenQUIC(t, 1, func(c *QUICConfig) {
				c.MaxHandlers, c.MaxHandlersPerGroup = 24, 8
				c.GroupOf = a.groupOf
				c.frameAlloc = func(n int) []byte {
					mu.Lock()
					largest = max(largest, n)
					mu.Unlock()
					return make([]byte, n)
				}
			})
			connected := listenQUIC(t, 2, nil)
			if _, _, err := connected.Request(t.Context(), contactOf(target), []byte("before")); err != nil {
				t.Fatal(err)
			}
			// Two connections of 8 trickling streams each: twice what the
			// source may run.
			streamFlood(t, a, target, connected, ids, 8, 100*time.Millisecond, slowloris(tt.length))
			a.halt()
			// Honest requests here are small: every buffer the target
			// allocated is at most the first chunk, whatever the attackers
			// announced.
			mu.Lock()
			defer mu.Unlock()
			if largest > frameFirstChunk {
				t.Errorf("the target allocated a buffer of %d bytes for frames announcing %d", largest, tt.length)
			}
		})
	}
}

func TestQUICProgressDeadlineResetsTricklingStream(t *testing.T) {
	target := listenQUIC(t, 1, func(c *QUICConfig) {
		c.FrameGrace = 200 * time.Millisecond
		c.RequestTimeout = 10 * time.Minute // only the progress deadline can end the stream
	})
	qc := handshakenClient(t, target, 3)
	s, err := qc.OpenStreamSync(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(binary.BigEndian.AppendUint32(nil, 1000)); err != nil {
		t.Fatal(err)
	}
	// One byte per tick: far below MinFrameRate.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	guard := time.After(2 * time.Minute)
	for {
		select {
		case <-tick.C:
			if _, err := s.Write([]byte{'x'}); err != nil {
				if code, ok := streamCode(err); !ok || code != CodeOverloaded {
					t.Fatalf("trickling stream ended with %v, want a reset with %#x", err, CodeOverloaded)
				}
				// The connection goes on.
				if resp, err := exchangeRaw(t, qc, appendFrame(nil, []byte("ok?"))); err != nil || string(resp) != "re:ok?" {
					t.Errorf("next request on the same connection: %q, %v", resp, err)
				}
				return
			}
		case <-guard:
			t.Fatal("hang guard: the trickling stream was never reset")
		}
	}
}

func TestQUICManyStreamsFromOnePeerLeaveRoomForOthers(t *testing.T) {
	// One verified peer keeps every stream its connection allows busy
	// with requests its handler answers only at the end of the test.
	a := newAttack(t, 1)
	defer a.halt()
	ids := throwaways(t, 1)
	release := make(chan struct{})
	attackerID := ids[0].ID()
	target := listenQUIC(t, 1, func(c *QUICConfig) {
		c.MaxHandlers, c.MaxHandlersPerGroup = 24, 8
		c.GroupOf = a.groupOf
		c.Handler = func(ctx context.Context, from Peer, req []byte) []byte {
			if from.ID == attackerID {
				select {
				case <-release:
				case <-ctx.Done():
				}
			}
			return echo(ctx, from, req)
		}
	})
	t.Cleanup(func() { close(release) })
	connected := listenQUIC(t, 2, nil)
	if _, _, err := connected.Request(t.Context(), contactOf(target), []byte("before")); err != nil {
		t.Fatal(err)
	}
	streamFlood(t, a, target, connected, ids, MaxStreamsPerConn, 10*time.Millisecond, func(s *quic.Stream, _ <-chan time.Time) error {
		err := writeFrame(s, []byte("expensive"))
		if err == nil {
			s.Close()
			_, err = readFrame(s, MaxFrameSize)
		}
		return err
	})
}
