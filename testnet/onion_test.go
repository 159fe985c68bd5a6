package testnet

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/clock"
	"github.com/flowmail/flowmail/kademlia"
	"github.com/flowmail/flowmail/node"
	"github.com/flowmail/flowmail/onion"
	"github.com/flowmail/flowmail/transport"
)

// onionWork is the stamp work of the onion tests: cheap to grind.
const onionWork = 4

// onionWatch records what every relay of a network sees.
type onionWatch struct {
	mu        sync.Mutex
	received  map[block.ID][]transport.Peer
	forwarded map[block.ID][]forwardSeen
	exits     map[block.ID][]exitSeen
}

type forwardSeen struct {
	source string
	to     block.ID
}

type exitSeen struct {
	source string
	req    onion.Request
}

func newOnionWatch() *onionWatch {
	return &onionWatch{received: map[block.ID][]transport.Peer{}, forwarded: map[block.ID][]forwardSeen{}, exits: map[block.ID][]exitSeen{}}
}

func (w *onionWatch) OnionReceived(relay block.ID, from transport.Peer) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.received[relay] = append(w.received[relay], from)
}

func (w *onionWatch) OnionForwarded(relay block.ID, source string, to block.ID, _ netip.AddrPort) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.forwarded[relay] = append(w.forwarded[relay], forwardSeen{source, to})
}

func (w *onionWatch) OnionExit(relay block.ID, source string, req onion.Request) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.exits[relay] = append(w.exits[relay], exitSeen{source, req})
}

// onionNet is a loopback network whose nodes each listen in a /16 of
// their own (127.i.0.1: loopback answers all of 127/8), so paths of
// three relays in distinct groups exist, with relays reporting to w and
// demanding onionWork bits of stamp work. tune, if set, adjusts every
// node after that.
func onionNet(t *testing.T, ctx context.Context, nodes int, clk clock.Clock, w *onionWatch, tune func(i int, c *node.Config)) *Net {
	t.Helper()
	net, err := Start(ctx, Config{
		Nodes:  nodes,
		Dir:    t.TempDir(),
		Clock:  clk,
		Logger: testLogger(t),
		Tune: func(i int, c *node.Config) {
			patient(c)
			c.K = 5
			c.Listen = fmt.Sprintf("127.%d.0.1:0", i+1)
			c.OnionMinWork = onionWork
			if w != nil {
				c.OnionObserver = w
			}
			if tune != nil {
				tune(i, c)
			}
		},
		TuneClient: func(c *node.Config) {
			patient(c)
			c.K = 5
			c.OnionMinWork = onionWork
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { net.Close() })
	return net
}

func openOnion(t *testing.T, ctx context.Context, c *node.Node, opt node.OnionOptions) *node.OnionNetwork {
	t.Helper()
	on, err := c.Onion(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(on.Close)
	return on
}

// TestOnionMailArrivesByteIdentical sends a mail through three relays
// and fetches it through three relays over real QUIC: it arrives byte
// for byte, every request was executed by an exit, the guard took the
// client's packets and opened none of them as a request, and no exit
// executed a packet that came from the client's address.
func TestOnionMailArrivesByteIdentical(t *testing.T) {
	ctx := hangGuard(t)
	w := newOnionWatch()
	net := onionNet(t, ctx, 16, nil, w, nil)
	c := client(t, ctx, net)
	us := users(t, ctx, c, 4, "alice", "bob")
	var progress []node.OnionProgress
	var pmu sync.Mutex
	on := openOnion(t, ctx, c, node.OnionOptions{Progress: func(p node.OnionProgress) {
		pmu.Lock()
		progress = append(progress, p)
		pmu.Unlock()
	}})

	msg := bigMail(t, us[0], us[1:], 40<<10) // shards larger than one onion body: PUT in parts, GET in ranges
	built, err := SendMail(ctx, on, us[0].Identity, ids(us[1:]), msg, nil)
	if err != nil {
		t.Fatalf("onion send: %v", err)
	}
	built.Release()
	rep := fetchOne(t, ctx, on, us[1], msg)
	if d := rep.Delivered[0].DeleteErr; !errors.Is(d, node.ErrOnionDelete) {
		t.Fatalf("deleting after an onion fetch: %v, want ErrOnionDelete", d)
	}

	clientSrc := transport.DefaultGroup(c.Addr()).String()
	guard := on.Guard().ID()
	w.mu.Lock()
	defer w.mu.Unlock()
	fromClient := 0
	for _, p := range w.received[guard] {
		if p.ID == c.ID() {
			fromClient++
		}
	}
	if fromClient == 0 {
		t.Fatalf("the guard %s received no packet from the client", guard.Short())
	}
	puts, gets, lists := 0, 0, 0
	for relay, es := range w.exits {
		for _, e := range es {
			if e.source == clientSrc {
				t.Errorf("exit %s executed a %s that came from the client's address", relay.Short(), e.req.Kind())
			}
			switch e.req.(type) {
			case onion.Put:
				puts++
			case onion.Get:
				gets++
			case onion.List:
				lists++
			}
		}
		if relay == guard && len(es) > 0 {
			t.Errorf("the guard executed %d requests: it saw a destination", len(es))
		}
	}
	// The first relay of every path hands client packets on to a relay,
	// never opens one as a request: it never learns the destination.
	for relay, fs := range w.forwarded {
		for _, f := range fs {
			if f.source == clientSrc && f.to == c.ID() {
				t.Errorf("relay %s sent a client packet back to the client", relay.Short())
			}
		}
	}
	if puts < 4 || gets < 2 || lists < 1 {
		t.Fatalf("exits ran %d puts, %d gets, %d lists; want the mail's parts, its fetches and a listing", puts, gets, lists)
	}
	pmu.Lock()
	defer pmu.Unlock()
	answered := 0
	for _, p := range progress {
		if p.Answered {
			answered++
		}
	}
	if answered == 0 || len(progress) < 2*answered {
		t.Fatalf("progress: %d reports, %d answered; want a hop report before each answer", len(progress), answered)
	}
}

// TestOnionDelaysFollowTheNodesClock: with a mean delay of ten minutes
// per hop, a store through three relays reaches the exit only once the
// nodes' clock has been moved past the delays (each held packet is
// released by moving the shared Offset clock to its due time, never by
// waiting), and then completes.
func TestOnionDelaysFollowTheNodesClock(t *testing.T) {
	if os.Getenv("FLOWMAIL_LONG") != "1" {
		t.Skip("FLOWMAIL_LONG=1 runs onion delays on a 12-node network (the package passed 10 minutes under -race with it); onion's relay tests hold packets by their delay on every run")
	}
	ctx := hangGuard(t)
	clk := &clock.Offset{}
	w := newOnionWatch()
	net := onionNet(t, ctx, 12, clk, w, nil)
	c := client(t, ctx, net)
	on := openOnion(t, ctx, c, node.OnionOptions{PutDelay: 10 * time.Minute})
	blk := dataBlock(t, 2000)

	done := make(chan error, 1)
	go func() { done <- on.Put(ctx, blk, time.Hour) }()
	var advanced time.Duration
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("onion put with delays: %v", err)
			}
			w.mu.Lock()
			n := 0
			for _, es := range w.exits {
				n += len(es)
			}
			w.mu.Unlock()
			if n != 1 {
				t.Fatalf("%d exit requests, want 1", n)
			}
			if advanced == 0 {
				t.Fatal("the put completed without the clock moving: delays were not held")
			}
			got, err := c.Get(ctx, block.Sum(blk))
			if err != nil || string(got) != string(blk) {
				t.Fatalf("the stored block: %v", err)
			}
			return
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(20 * time.Millisecond): // poll for held packets
		}
		// Move the clock to the earliest due time of any held packet.
		var due time.Time
		for _, nd := range net.Running() {
			if st, ok := nd.OnionStatus(); ok && !st.NextDue.IsZero() && (due.IsZero() || st.NextDue.Before(due)) {
				due = st.NextDue
			}
		}
		if d := due.Sub(clk.Now()); !due.IsZero() && d > 0 {
			clk.Advance(d + time.Millisecond)
			advanced += d
		}
	}
}

// dataBlock is a valid data block of about n bytes.
func dataBlock(t *testing.T, n int) []byte {
	t.Helper()
	body := make([]byte, n)
	crand.Read(body)
	return block.Data{Payload: body}.Encode()
}

// TestOnionRelayThrottlesAFloodingSource: a source that sends more
// packets than its burst is refused as overloaded (ERROR 7), counted,
// while another source is still served.
func TestOnionRelayThrottlesAFloodingSource(t *testing.T) {
	ctx := hangGuard(t)
	const burst = 3
	net := onionNet(t, ctx, 4, nil, nil, func(_ int, c *node.Config) {
		c.OnionRate, c.OnionBurst = 1e-9, burst // no refill within any test
	})
	relay := net.Node(0)
	dial := func() *transport.QUIC {
		id, err := identity.Generate(0, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		q, err := transport.ListenQUIC(ctx, transport.QUICConfig{Identity: id, Network: net.Network(), ListenAddr: "127.0.0.1:0", Client: true, RequestTimeout: 2 * time.Minute, HandshakeTimeout: 2 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
		return q
	}
	send := func(q *transport.QUIC) kademlia.ErrorCode {
		pkt := make([]byte, 1+onion.PacketSize)
		pkt[0], pkt[1] = onion.MsgOnion, onion.Version
		crand.Read(pkt[2:]) // a stamp for another relay: refused after the rate check
		resp, _, err := q.Request(ctx, relay.Contact(), pkt)
		if err != nil {
			t.Fatal(err)
		}
		m, err := kademlia.Decode(resp)
		if err != nil {
			t.Fatal(err)
		}
		e, ok := m.(*kademlia.Error)
		if !ok {
			t.Fatalf("a random packet was taken: %s", m.Type())
		}
		return e.Code
	}
	flooder, other := dial(), dial()
	for i := range burst + 5 {
		code := send(flooder)
		want := kademlia.CodeMalformed
		if i >= burst {
			want = kademlia.CodeOverloaded
		}
		if code != want {
			t.Fatalf("flooder's packet %d: %s, want %s", i, code, want)
		}
	}
	if code := send(other); code != kademlia.CodeMalformed {
		t.Fatalf("another source after the flood: %s, want its packet checked (%s)", code, kademlia.CodeMalformed)
	}
	st, _ := relay.OnionStatus()
	if st.Throttled != 5 {
		t.Fatalf("relay counted %d throttled packets, want 5", st.Throttled)
	}
	if got := st.Relay.DroppedFor(onion.ErrStampRelay); got != burst+1 {
		t.Fatalf("relay checked %d stamps, want %d", got, burst+1)
	}
}

// TestOnionNeedsRelays: a client whose routing table holds fewer than
// three relays with known pubkeys gets ErrNoRelays.
func TestOnionNeedsRelays(t *testing.T) {
	ctx := hangGuard(t)
	net := onionNet(t, ctx, 2, nil, nil, nil)
	c := client(t, ctx, net)
	if _, err := c.Onion(ctx, node.OnionOptions{}); !errors.Is(err, node.ErrNoRelays) {
		t.Fatalf("onion over 2 relays: %v, want ErrNoRelays", err)
	}
}

// TestOnionRetriesWhenTheGuardIsGone: with the guard stopped (its
// address refusing at once), a store notices that the first relay does
// not take the packet, marks the guard failing and succeeds on another
// path; the guard is kept (not replaced before GuardGrace) but no longer
// starts paths.
func TestOnionRetriesWhenTheGuardIsGone(t *testing.T) {
	if os.Getenv("FLOWMAIL_LONG") != "1" {
		t.Skip("FLOWMAIL_LONG=1 stops the guard of a 16-node network (the package passed 10 minutes under -race with it)")
	}
	ctx := hangGuard(t)
	net := onionNet(t, ctx, 16, nil, nil, nil)
	c := client(t, ctx, net)
	on := openOnion(t, ctx, c, node.OnionOptions{})
	guard := on.Guard()
	stopped := false
	for i := range 16 {
		if nd := net.Node(i); nd != nil && nd.ID() == guard.ID() {
			id := nd.Identity()
			if err := net.Stop(i); err != nil {
				t.Fatal(err)
			}
			refuseAt(t, ctx, guard.Addr, id)
			stopped = true
		}
	}
	if !stopped {
		t.Fatal("the guard is no node of the network")
	}
	// A block the guard is not near, so the guard is the first hop
	// chosen (a guard among the K closest sits the request out).
	var blk []byte
	for blk == nil {
		b := dataBlock(t, 3000)
		near := false
		for _, ct := range c.DHT().Closest(block.Sum(b), 5) {
			near = near || ct.ID == guard.ID()
		}
		if !near {
			blk = b
		}
	}
	if err := on.Put(ctx, blk, time.Hour); err != nil {
		t.Fatalf("put with the guard gone: %v", err)
	}
	if !on.GuardFailing() {
		t.Fatal("the guard was not marked failing")
	}
	if on.Guard().ID() != guard.ID() {
		t.Fatal("the guard was replaced at its first failure")
	}
	if got, err := c.Get(ctx, block.Sum(blk)); err != nil || string(got) != string(blk) {
		t.Fatalf("the stored block: %v", err)
	}
}
