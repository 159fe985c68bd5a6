package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flowmail/flowmail/identity"
)

// testIdentity returns a deterministic identity; the cache keeps the
// ML-KEM key derivation out of every test.
var (
	idCacheMu sync.Mutex
	idCache   = map[int]*identity.Identity{}
)

func testIdentity(t testing.TB, n int) *identity.Identity {
	t.Helper()
	idCacheMu.Lock()
	defer idCacheMu.Unlock()
	if id := idCache[n]; id != nil {
		return id
	}
	var seed [identity.SeedSize]byte
	seed[0], seed[1], seed[2] = byte(n), byte(n>>8), 0xa5
	id, err := identity.FromSeed(seed, 0, time.Unix(1_700_000_000, 0))
	if err != nil {
		t.Fatal(err)
	}
	idCache[n] = id
	return id
}

// echo answers every request with "re:" and the request.
func echo(_ context.Context, _ Peer, req []byte) []byte {
	return append([]byte("re:"), req...)
}

func listenMem(t *testing.T, n *MemNetwork, idn int, cfg MemEndpointConfig) *MemEndpoint {
	t.Helper()
	e, err := n.Listen(testIdentity(t, idn), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func contactOf(e interface{ Self() Peer }) Contact {
	p := e.Self()
	return Contact{ID: p.ID, Addr: p.Addr}
}

func TestMemRequestsBothWays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewMemNetwork(MemConfig{})
		adv := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:4433")}
		a := listenMem(t, n, 1, MemEndpointConfig{Handler: echo, Advertised: adv})
		var seen Peer
		b := listenMem(t, n, 2, MemEndpointConfig{Client: true, Handler: func(ctx context.Context, from Peer, req []byte) []byte {
			seen = from
			return echo(ctx, from, req)
		}})

		resp, p, err := a.Request(t.Context(), contactOf(b), []byte("hi"))
		if err != nil {
			t.Fatal(err)
		}
		if string(resp) != "re:hi" {
			t.Errorf("response %q", resp)
		}
		if p.ID != testIdentity(t, 2).ID() || p.Addr != b.LocalAddr() || !p.Client || p.Pubkey.ID != p.ID {
			t.Errorf("answering peer %+v, want b as client", p)
		}
		if seen.ID != testIdentity(t, 1).ID() || seen.Addr != a.LocalAddr() || seen.Client || len(seen.Advertised) != 1 || seen.Advertised[0] != adv[0] {
			t.Errorf("handler saw %+v, want a with its advertised address", seen)
		}

		resp, p, err = b.Request(t.Context(), Contact{Addr: a.LocalAddr()}, []byte("yo"))
		if err != nil || string(resp) != "re:yo" || p.ID != testIdentity(t, 1).ID() {
			t.Fatalf("b→a by address only: %q %v %v", resp, p.ID, err)
		}
	})
}

func TestMemLatencyIsRoundTripOfTheLink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := MemConfig{Seed: 7, Latency: 20 * time.Millisecond, Jitter: 30 * time.Millisecond}
		n := NewMemNetwork(cfg)
		a := listenMem(t, n, 1, MemEndpointConfig{Handler: echo})
		b := listenMem(t, n, 2, MemEndpointConfig{Handler: echo})
		oneWay := n.latency(a.LocalAddr(), b.LocalAddr())
		if oneWay < cfg.Latency || oneWay >= cfg.Latency+cfg.Jitter {
			t.Fatalf("link latency %v outside [%v, %v)", oneWay, cfg.Latency, cfg.Latency+cfg.Jitter)
		}
		if back := n.latency(b.LocalAddr(), a.LocalAddr()); back != oneWay {
			t.Errorf("latency a→b %v, b→a %v: links must be symmetric", oneWay, back)
		}
		if again := NewMemNetwork(cfg).latency(a.LocalAddr(), b.LocalAddr()); again != oneWay {
			t.Errorf("same seed gives %v then %v", oneWay, again)
		}
		for _, dir := range []struct{ from, to *MemEndpoint }{{a, b}, {b, a}} {
			start := time.Now()
			if _, _, err := dir.from.Request(t.Context(), contactOf(dir.to), []byte("x")); err != nil {
				t.Fatal(err)
			}
			if got := time.Since(start); got != 2*oneWay {
				t.Errorf("request took %v, want two one-way delays (%v)", got, 2*oneWay)
			}
		}
	})
}

func TestMemJitterSpreadsLinks(t *testing.T) {
	n := NewMemNetwork(MemConfig{Seed: 1, Jitter: time.Second})
	distinct := map[time.Duration]bool{}
	for i := range 50 {
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 1)
		b := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}), 1)
		distinct[n.latency(a, b)] = true
	}
	if len(distinct) < 45 {
		t.Errorf("50 links got only %d distinct latencies", len(distinct))
	}
}

func TestMemLostRequestFailsAtItsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewMemNetwork(MemConfig{Loss: 1, RequestTimeout: 3 * time.Second})
		a := listenMem(t, n, 1, MemEndpointConfig{Handler: echo})
		b := listenMem(t, n, 2, MemEndpointConfig{Handler: echo})

		start := time.Now()
		_, _, err := a.Request(t.Context(), contactOf(b), []byte("x"))
		if !errors.Is(err, ErrUnreachable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("lost request: %v, want ErrUnreachable and DeadlineExceeded", err)
		}
		if got := time.Since(start); got != 3*time.Second {
			t.Errorf("failed after %v, want the request timeout 3s", got)
		}

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start = time.Now()
		_, _, err = a.Request(ctx, contactOf(b), []byte("x"))
		if !errors.Is(err, ErrUnreachable) || time.Since(start) != time.Second {
			t.Errorf("with a 1s caller deadline: %v after %v", err, time.Since(start))
		}
	})
}

func TestMemFailFastReportsLossAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewMemNetwork(MemConfig{Loss: 1, FailFast: true})
		a := listenMem(t, n, 1, MemEndpointConfig{Handler: echo})
		b := listenMem(t, n, 2, MemEndpointConfig{Handler: echo})
		start := time.Now()
		_, _, err := a.Request(t.Context(), contactOf(b), []byte("x"))
		if !errors.Is(err, ErrUnreachable) || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want ErrUnreachable without a deadline", err)
		}
		if time.Since(start) != 0 {
			t.Errorf("took %v", time.Since(start))
		}
	})
}

func TestMemLossRateFollowsConfig(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const loss, tries = 0.3, 1000
		n := NewMemNetwork(MemConfig{Seed: 3, Loss: loss, FailFast: true})
		a := listenMem(t, n, 1, MemEndpointConfig{Handler: echo})
		b := listenMem(t, n, 2, MemEndpointConfig{Handler: echo})
		failed := 0
		for range tries {
			if _, _, err := a.Request(t.Context(), contactOf(b), []byte("x")); err != nil {
				failed++
			}
		}
		// Request and response are each lost with probability 0.3:
		// 1-0.7² = 51% fail. Binomial sd is 16 of 1000; allow 5 sd.
		if failed < 430 || failed > 590 {
			t.Errorf("%d of %d requests failed, want about 510", failed, tries)
		}
	})
}

func TestMemPartitionAndHeal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewMemNetwork(MemConfig{DialTimeout: 2 * time.Second})
		a := listenMem(t, n, 1, MemEndpointConfig{Handler: echo})
		b := listenMem(t, n, 2, MemEndpointConfig{Handler: echo})
		c := listenMem(t, n, 3, MemEndpointConfig{Handler: echo})
		n.Partition([]netip.AddrPort{a.LocalAddr(), b.LocalAddr()})

		if _, _, err := a.Request(t.Context(), contactOf(b), []byte("x")); err != nil {
			t.Errorf("a→b inside one group: %v", err)
		}
		for _, pair := range [][2]*MemEndpoint{{a, c}, {c, b}} {
			start := time.Now()
			_, _, err := pair[0].Request(t.Context(), contactOf(pair[1]), []byte("x"))
			if !errors.Is(err, ErrUnreachable) {
				t.Errorf("across the partition: %v, want ErrUnreachable", err)
			}
			if time.Since(start) != 2*time.Second {
				t.Errorf("across the partition failed after %v, want the dial timeout", time.Since(start))
			}
		}
		n.Heal()
		if _, _, err := a.Request(t.Context(), contactOf(c), []byte("x")); err != nil {
			t.Errorf("after Heal: %v", err)
		}
	})
}

func TestMemPartitionDuringRequestLosesResponse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewMemNetwork(MemConfig{FailFast: true})
		a := listenMem(t, n, 1, MemEndpointConfig{Handler: echo})
		var b *MemEndpoint
		b = listenMem(t, n, 2, MemEndpointConfig{Handler: func(ctx context.Context, from Peer, req []byte) []byte {
			n.Partition([]netip.AddrPort{b.LocalAddr()})
			return echo(ctx, from, req)
		}})
		if _, _, err := a.Request(t.Context(), contactOf(b), []byte("x")); !errors.Is(err, ErrUnreachable) {
			t.Errorf("got %v, want the response lost to the partition", err)
		}
	})
}

func TestMemWrongIDIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewMemNetwork(MemConfig{})
		a := listenMem(t, n, 1, MemEndpointConfig{Handler: echo})
		b := listenMem(t, n, 2, MemEndpointConfig{Handler: echo})
		_, _, err := a.Request(t.Context(), Contact{ID: testIdentity(t, 3).ID(), Addr: b.LocalAddr()}, []byte("x"))
		if !errors.Is(err, ErrWrongPeer) {
			t.Errorf("got %v, want ErrWrongPeer", err)
		}
	})
}

func TestMemPayloadLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewMemNetwork(MemConfig{})
		a := listenMem(t, n, 1, MemEndpointConfig{Handler: echo})
		tests := []struct {
			name    string
			handler Handler
			req     []byte
			want    error
		}{
			{"EmptyRequest", echo, nil, ErrEmptyPayload},
			{"OversizedRequest", echo, make([]byte, MaxFrameSize+1), ErrFrameTooLarge},
			{"LargestRequest", func(context.Context, Peer, []byte) []byte { return []byte("ok") }, make([]byte, MaxFrameSize), nil},
			{"EmptyResponse", func(context.Context, Peer, []byte) []byte { return nil }, []byte("x"), ErrRefused},
			{"OversizedResponse", func(context.Context, Peer, []byte) []byte { return make([]byte, MaxFrameSize+1) }, []byte("x"), ErrFrameTooLarge},
		}
		for i, tt := range tests {
			b := listenMem(t, n, 10+i, MemEndpointConfig{Handler: tt.handler})
			_, _, err := a.Request(t.Context(), contactOf(b), tt.req)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
			}
		}
	})
}

func TestMemRequestAndResponseAreCopies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewMemNetwork(MemConfig{})
		kept := []byte("stored block")
		var got []byte
		a := listenMem(t, n, 1, MemEndpointConfig{})
		b := listenMem(t, n, 2, MemEndpointConfig{Handler: func(_ context.Context, _ Peer, req []byte) []byte {
			got = req
			return kept
		}})
		req := []byte("request")
		resp, _, err := a.Request(t.Context(), contactOf(b), req)
		if err != nil {
			t.Fatal(err)
		}
		req[0], resp[0] = 'X', 'X'
		if string(got) != "request" || string(kept) != "stored block" {
			t.Errorf("handler's request %q or kept response %q changed through the requester's slices", got, kept)
		}
	})
}

func TestMemOverloadedBeyondMaxHandlers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewMemNetwork(MemConfig{MaxHandlers: 2})
		release := make(chan struct{})
		a := listenMem(t, n, 1, MemEndpointConfig{})
		b := listenMem(t, n, 2, MemEndpointConfig{Handler: func(ctx context.Context, from Peer, req []byte) []byte {
			<-release
			return echo(ctx, from, req)
		}})
		errs := make(chan error, 2)
		for range 2 {
			go func() {
				_, _, err := a.Request(t.Context(), contactOf(b), []byte("x"))
				errs <- err
			}()
		}
		synctest.Wait()
		if _, _, err := a.Request(t.Context(), contactOf(b), []byte("x")); !errors.Is(err, ErrOverloaded) {
			t.Errorf("third concurrent request: %v, want ErrOverloaded", err)
		}
		close(release)
		for range 2 {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
		if _, _, err := a.Request(t.Context(), contactOf(b), []byte("x")); err != nil {
			t.Errorf("after the handlers returned: %v", err)
		}
	})
}

func TestMemNoHandlerYetIsOverloaded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewMemNetwork(MemConfig{})
		a := listenMem(t, n, 1, MemEndpointConfig{})
		b := listenMem(t, n, 2, MemEndpointConfig{})
		if _, _, err := a.Request(t.Context(), contactOf(b), []byte("x")); !errors.Is(err, ErrOverloaded) {
			t.Errorf("before SetHandler: %v, want ErrOverloaded", err)
		}
		b.SetHandler(echo)
		if _, _, err := a.Request(t.Context(), contactOf(b), []byte("x")); err != nil {
			t.Errorf("after SetHandler: %v", err)
		}
	})
}

func TestMemHandlerContextEndsAtRequestTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// With latency the requester's deadline passes a millisecond
		// before the handler's, which starts when the request arrives.
		n := NewMemNetwork(MemConfig{RequestTimeout: 4 * time.Second, Latency: time.Millisecond})
		a := listenMem(t, n, 1, MemEndpointConfig{})
		waited := make(chan time.Duration, 1)
		b := listenMem(t, n, 2, MemEndpointConfig{Handler: func(ctx context.Context, _ Peer, _ []byte) []byte {
			start := time.Now()
			<-ctx.Done()
			waited <- time.Since(start)
			return []byte("late")
		}})
		_, _, err := a.Request(t.Context(), contactOf(b), []byte("x"))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %v, want the request deadline", err)
		}
		if got := <-waited; got != 4*time.Second {
			t.Errorf("handler context lasted %v, want 4s", got)
		}
	})
}

func TestMemCloseStopsHandlersAndRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewMemNetwork(MemConfig{DialTimeout: time.Second})
		a := listenMem(t, n, 1, MemEndpointConfig{Handler: echo})
		started := make(chan struct{})
		var returned atomic.Bool
		b, err := n.Listen(testIdentity(t, 2), MemEndpointConfig{Handler: func(ctx context.Context, _ Peer, _ []byte) []byte {
			close(started)
			<-ctx.Done()
			returned.Store(true)
			return []byte("bye")
		}})
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() {
			_, _, err := a.Request(t.Context(), contactOf(b), []byte("x"))
			errc <- err
		}()
		<-started
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if !returned.Load() {
			t.Error("Close returned before the handler it cancelled")
		}
		if err := <-errc; !errors.Is(err, ErrUnreachable) {
			t.Errorf("request in flight when the peer closed: %v, want ErrUnreachable", err)
		}
		start := time.Now()
		if _, _, err := a.Request(t.Context(), contactOf(b), []byte("x")); !errors.Is(err, ErrUnreachable) || time.Since(start) != time.Second {
			t.Errorf("request to a closed endpoint: %v after %v, want ErrUnreachable after the dial timeout", err, time.Since(start))
		}
		if _, _, err := b.Request(t.Context(), contactOf(a), []byte("x")); !errors.Is(err, ErrClosed) {
			t.Errorf("request from a closed endpoint: %v, want ErrClosed", err)
		}
		if err := b.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}

		// The address is free again: a restarted node can take it.
		c := listenMem(t, n, 3, MemEndpointConfig{Handler: echo, Addr: b.LocalAddr()})
		if _, p, err := a.Request(t.Context(), Contact{Addr: b.LocalAddr()}, []byte("x")); err != nil || p.ID != c.Self().ID {
			t.Errorf("restarted at the same address: %v, %v", p.ID.Short(), err)
		}
	})
}

func TestMemCloseInterruptsOwnRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewMemNetwork(MemConfig{Latency: time.Hour})
		a, err := n.Listen(testIdentity(t, 1), MemEndpointConfig{})
		if err != nil {
			t.Fatal(err)
		}
		b := listenMem(t, n, 2, MemEndpointConfig{Handler: echo})
		errc := make(chan error, 1)
		go func() {
			_, _, err := a.Request(t.Context(), contactOf(b), []byte("x"))
			errc <- err
		}()
		synctest.Wait()
		a.Close()
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Errorf("got %v, want ErrClosed", err)
		}
	})
}

func TestMemCallerCancelStopsWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewMemNetwork(MemConfig{Latency: time.Minute})
		a := listenMem(t, n, 1, MemEndpointConfig{})
		b := listenMem(t, n, 2, MemEndpointConfig{Handler: echo})
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(time.Second, cancel)
		start := time.Now()
		_, _, err := a.Request(ctx, contactOf(b), []byte("x"))
		if !errors.Is(err, context.Canceled) || time.Since(start) != time.Second {
			t.Errorf("got %v after %v, want Canceled after 1s", err, time.Since(start))
		}
	})
}

func TestMemAddresses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewMemNetwork(MemConfig{})
		seen := map[netip.AddrPort]bool{}
		slash24 := map[[3]byte]bool{}
		for i := range 64 {
			e := listenMem(t, n, i, MemEndpointConfig{})
			a := e.LocalAddr()
			if seen[a] || !netip.MustParsePrefix("10.0.0.0/8").Contains(a.Addr()) {
				t.Fatalf("address %v repeated or outside 10.0.0.0/8", a)
			}
			seen[a] = true
			b := a.Addr().As4()
			slash24[[3]byte(b[:3])] = true
		}
		if len(slash24) < 60 {
			t.Errorf("64 endpoints share only %d /24 prefixes: addresses should scatter", len(slash24))
		}
		for a := range seen {
			if _, err := n.Listen(testIdentity(t, 99), MemEndpointConfig{Addr: a}); err == nil {
				t.Errorf("second endpoint at %v accepted", a)
			}
			break
		}

		one := NewMemNetwork(MemConfig{Prefix: netip.MustParsePrefix("127.0.0.1/32"), Port: 9000})
		for i, want := range []string{"127.0.0.1:9001", "127.0.0.1:9002"} {
			e := listenMem(t, one, i, MemEndpointConfig{})
			if e.LocalAddr().String() != want {
				t.Errorf("endpoint %d at %v, want %s", i, e.LocalAddr(), want)
			}
		}
		if _, err := NewMemNetwork(MemConfig{Prefix: netip.MustParsePrefix("fd00::/64")}).Listen(testIdentity(t, 1), MemEndpointConfig{}); err == nil {
			t.Error("IPv6 prefix accepted for address allocation")
		}
		if _, err := n.Listen(testIdentity(t, 1), MemEndpointConfig{Advertised: make([]netip.AddrPort, MaxAdvertised+1)}); err == nil {
			t.Error("too many advertised addresses accepted")
		}
	})
}

func TestScatterIsABijection(t *testing.T) {
	for _, bits := range []int{1, 2, 3, 8, 12} {
		seen := make(map[uint64]bool)
		for x := range uint64(1) << bits {
			y := scatter(x, bits)
			if y >= 1<<bits || seen[y] {
				t.Fatalf("bits %d: scatter(%d) = %d repeats or overflows", bits, x, y)
			}
			seen[y] = true
		}
	}
}

type countingObserver struct {
	mu       sync.Mutex
	requests map[Direction]int
	errors   int
	bytesIn  int
	conns    map[ConnState]int
	events   []ConnEvent
	changed  chan struct{} // closed and replaced at every connection event
}

func newCountingObserver() *countingObserver {
	return &countingObserver{requests: map[Direction]int{}, conns: map[ConnState]int{}, changed: make(chan struct{})}
}

// waitConn waits until cond holds for the connection events seen so
// far; the guard only stops a hung test.
func (o *countingObserver) waitConn(t testing.TB, what string, cond func([]ConnEvent) bool) {
	t.Helper()
	guard := time.NewTimer(2 * time.Minute)
	defer guard.Stop()
	for {
		o.mu.Lock()
		ok, ch := cond(o.events), o.changed
		o.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-guard.C:
			t.Fatalf("hang guard: still waiting for %s", what)
		}
	}
}

func (o *countingObserver) RequestDone(ev RequestEvent) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.requests[ev.Dir]++
	o.bytesIn += ev.Received
	if ev.Err != nil {
		o.errors++
	}
}

func (o *countingObserver) ConnChanged(ev ConnEvent) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.conns[ev.State]++
	o.events = append(o.events, ev)
	close(o.changed)
	o.changed = make(chan struct{})
}

func (o *countingObserver) snapshot() (out, in, errs, bytesIn int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.requests[Outgoing], o.requests[Incoming], o.errors, o.bytesIn
}

func (o *countingObserver) connCount(s ConnState) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.conns[s]
}

func TestMemObserverSeesBothDirections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewMemNetwork(MemConfig{})
		oa, ob := newCountingObserver(), newCountingObserver()
		a := listenMem(t, n, 1, MemEndpointConfig{Observer: oa})
		b := listenMem(t, n, 2, MemEndpointConfig{Handler: echo, Observer: ob})
		for range 3 {
			if _, _, err := a.Request(t.Context(), contactOf(b), []byte("abc")); err != nil {
				t.Fatal(err)
			}
		}
		a.Request(t.Context(), Contact{Addr: netip.MustParseAddrPort("10.255.255.254:1")}, []byte("x"))
		if out, in, errs, got := oa.snapshot(); out != 4 || in != 0 || errs != 1 || got != 3*6 {
			t.Errorf("requester saw out=%d in=%d errors=%d bytes=%d", out, in, errs, got)
		}
		if out, in, errs, got := ob.snapshot(); out != 0 || in != 3 || errs != 0 || got != 3*3 {
			t.Errorf("responder saw out=%d in=%d errors=%d bytes=%d", out, in, errs, got)
		}
	})
}

func TestMemConcurrentRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewMemNetwork(MemConfig{Seed: 5, Latency: time.Millisecond, Jitter: 5 * time.Millisecond})
		const nodes, each = 8, 25
		eps := make([]*MemEndpoint, nodes)
		for i := range eps {
			eps[i] = listenMem(t, n, i, MemEndpointConfig{Handler: echo})
		}
		var wg sync.WaitGroup
		var failures atomic.Int32
		for i, from := range eps {
			for j := range each {
				wg.Go(func() {
					to := eps[(i+1+j)%nodes]
					if to == from {
						to = eps[(i+1)%nodes]
					}
					msg := fmt.Appendf(nil, "%d-%d", i, j)
					resp, p, err := from.Request(t.Context(), contactOf(to), msg)
					if err != nil || !bytes.Equal(resp, append([]byte("re:"), msg...)) || p.ID != to.Self().ID {
						failures.Add(1)
					}
				})
			}
		}
		wg.Wait()
		if f := failures.Load(); f != 0 {
			t.Errorf("%d of %d concurrent requests failed", f, nodes*each)
		}
	})
}

// TestMemManyEndpoints checks that a large simulated network stays cheap.
// The default suite runs 300 endpoints; FLOWMAIL_LONG=1 runs 10,000.
func TestMemManyEndpoints(t *testing.T) {
	nodes := 300
	if os.Getenv("FLOWMAIL_LONG") == "1" {
		nodes = 10_000
	}
	ids := make([]*identity.Identity, nodes)
	for i := range ids {
		var seed [identity.SeedSize]byte
		seed[0], seed[1], seed[2] = byte(i), byte(i>>8), 0x5a
		id, err := identity.FromSeed(seed, 0, time.Unix(1_700_000_000, 0))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	synctest.Test(t, func(t *testing.T) {
		n := NewMemNetwork(MemConfig{Seed: 9, Latency: 10 * time.Millisecond, Jitter: 90 * time.Millisecond, Loss: 0.01})
		eps := make([]*MemEndpoint, nodes)
		for i := range eps {
			e, err := n.Listen(ids[i], MemEndpointConfig{Handler: echo})
			if err != nil {
				t.Fatal(err)
			}
			eps[i] = e
		}
		var wg sync.WaitGroup
		var ok atomic.Int32
		for i, e := range eps {
			wg.Go(func() {
				to := eps[(i*7919+1)%nodes]
				if _, p, err := e.Request(t.Context(), contactOf(to), []byte("ping")); err == nil && p.ID == to.Self().ID {
					ok.Add(1)
				}
			})
		}
		wg.Wait()
		// 1% loss each way: about 2% of the requests fail.
		if got := int(ok.Load()); got < nodes*9/10 {
			t.Errorf("%d of %d requests succeeded", got, nodes)
		}
		for _, e := range eps {
			e.Close()
		}
		if len(n.endpoints) != 0 {
			t.Errorf("%d endpoints left after closing all", len(n.endpoints))
		}
	})
}

func TestMemListenNeedsIdentity(t *testing.T) {
	if _, err := NewMemNetwork(MemConfig{}).Listen(nil, MemEndpointConfig{}); err == nil {
		t.Error("Listen(nil) accepted")
	}
}
