package testnet

import (
	"bytes"
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
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/clock"
	"github.com/flowmail/flowmail/kademlia"
	"github.com/flowmail/flowmail/mailbox"
	"github.com/flowmail/flowmail/node"
	"github.com/flowmail/flowmail/onion"
	"github.com/flowmail/flowmail/record"
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
	// held hears the relay of every packet opened and held (for tests
	// that move the clock); a full channel drops events, counted.
	held        chan block.ID
	heldDropped int
	// forwardsTo hears the next hop of every packet a relay hands on.
	forwardsTo chan block.ID
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
	return &onionWatch{received: map[block.ID][]transport.Peer{}, forwarded: map[block.ID][]forwardSeen{}, exits: map[block.ID][]exitSeen{},
		held: make(chan block.ID, 1<<12), forwardsTo: make(chan block.ID, 1<<12)}
}

func (w *onionWatch) OnionHeld(relay block.ID) {
	select {
	case w.held <- relay:
	default:
		w.mu.Lock()
		w.heldDropped++
		w.mu.Unlock()
	}
}

// exitCount counts the requests of kind k that exits executed.
func (w *onionWatch) exitCount(k onion.RequestKind) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, es := range w.exits {
		for _, e := range es {
			if e.req.Kind() == k {
				n++
			}
		}
	}
	return n
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
	select {
	case w.forwardsTo <- to:
	default:
		w.heldDropped++
	}
}

func (w *onionWatch) OnionExit(relay block.ID, source string, req onion.Request) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.exits[relay] = append(w.exits[relay], exitSeen{source, req})
}

// onionNet is a loopback network of nodes with replication factor k,
// each listening in a /16 of its own (127.i.0.1: loopback answers all
// of 127/8), so paths of three relays in distinct groups exist beyond
// the k closest to any target, with relays reporting to w and demanding
// onionWork bits of stamp work. tune, if set, adjusts every node after
// that.
func onionNet(t *testing.T, ctx context.Context, nodes, k int, clk clock.Clock, w *onionWatch, tune func(i int, c *node.Config)) *Net {
	t.Helper()
	net, err := Start(ctx, Config{
		Nodes:  nodes,
		Dir:    t.TempDir(),
		Clock:  clk,
		K:      k,
		Logger: testLogger(t),
		Tune: func(i int, c *node.Config) {
			patient(c)
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
	began := time.Now()
	step := func(what string) { t.Logf("%s done at %v", what, time.Since(began).Round(time.Millisecond)) }
	w := newOnionWatch()
	net := onionNet(t, ctx, 16, 5, nil, w, nil)
	c := client(t, ctx, net)
	step("network")
	us := users(t, ctx, c, 4, "alice", "bob", "carol")
	var progress []node.OnionProgress
	var pmu sync.Mutex
	on := openOnion(t, ctx, c, node.OnionOptions{Progress: func(p node.OnionProgress) {
		pmu.Lock()
		progress = append(progress, p)
		pmu.Unlock()
	}})

	msg := bigMail(t, us[0], us[1:2], 40<<10) // shards larger than one onion body: PUT in parts, GET in ranges
	built, err := SendMail(ctx, on, us[0].Identity, ids(us[1:2]), msg, nil)
	if err != nil {
		t.Fatalf("onion send: %v", err)
	}
	built.Release()
	step("send")
	// Kept: deleting through exits is TestOnionDelaysAndLostPackets…'s
	// and cmd/flowmail's (fetch --onion); each delete is one more onion
	// round trip per block, which this test need not pay again.
	rep, err := FetchMail(ctx, on, us[1], delivery.FetchOptions{Keep: true})
	if err != nil {
		t.Fatalf("onion fetch: %v", err)
	}
	if len(rep.Delivered) != 1 {
		t.Fatalf("delivered %d mails (rejected %v, deferred %v), want 1", len(rep.Delivered), rep.Rejected, rep.Deferred)
	}
	if got, err := os.ReadFile(rep.Delivered[0].Path); err != nil || !bytes.Equal(got, mailbox.ToLF(msg)) {
		t.Fatalf("the fetched mail differs from the one sent (%v)", err)
	}
	step("fetch")

	// A key log read through exits folds as one read directly: carol's
	// ends in a revocation, stored over an older version.
	carol := us[2]
	log0, err := record.NewKeyLog(carol.Public().Block)
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := record.Revoke(log0, carol.Identity, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*record.Record{log0, revoked} {
		if _, err := c.DHT().PutRecord(ctx, r.Bytes(), time.Hour); err != nil {
			t.Fatalf("storing carol's key log: %v", err)
		}
	}
	step("key log stored")
	st, err := on.KeyState(ctx, carol.ID())
	if err != nil || !st.Revoked {
		t.Fatalf("carol's key state through exits: %+v, %v; want revoked", st, err)
	}
	got, _, err := on.GetRecord(ctx, record.KeyLogSlot(carol.ID()))
	if err != nil || !bytes.Equal(got.Bytes(), revoked.Bytes()) {
		t.Fatalf("carol's key log through exits: %v; want the revoking version", err)
	}
	step("key log read")
	if n := w.exitCount(onion.KindRecord); n < 2*node.RecordExits {
		t.Fatalf("exits ran %d record lookups, want %d per lookup", n, node.RecordExits)
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
	net := onionNet(t, ctx, 4, 3, nil, nil, func(_ int, c *node.Config) {
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
	net := onionNet(t, ctx, 2, 3, nil, nil, nil)
	c := client(t, ctx, net)
	if _, err := c.Onion(ctx, node.OnionOptions{}); !errors.Is(err, node.ErrNoRelays) {
		t.Fatalf("onion over 2 relays: %v, want ErrNoRelays", err)
	}
}

// onionDriver moves a network's shared Offset clock for an onion client,
// on events, never by waiting: to the due time of packets the relays
// hold, and past the client's give-up time once the test has lost a
// packet on purpose.
type onionDriver struct {
	t        *testing.T
	ctx      context.Context
	net      *Net
	clk      *clock.Offset
	w        *onionWatch
	on       *node.OnionNetwork
	progress chan node.OnionProgress
	stopped  map[block.ID]bool // relays the test stopped
}

// put stores blk through on and drives the clock until it returns.
// atHold, if set, hears each relay that holds a packet; when it returns
// true it has stopped that relay, the packet is lost, and the client's
// attempt can end only by giving up on its clock; so can one whose
// packet a relay hands to a relay stopped earlier. put returns the
// progress reports and the put's error, and how far it moved the clock.
func (d *onionDriver) put(blk []byte, atHold func(relay block.ID) bool) ([]node.OnionProgress, time.Duration, error) {
	// Every packet of an earlier put was held before that put returned;
	// its events left in the channel are not this put's.
	for len(d.w.held) > 0 {
		<-d.w.held
	}
	for len(d.w.forwardsTo) > 0 {
		<-d.w.forwardsTo
	}
	done := make(chan error, 1)
	go func() { done <- d.on.Put(d.ctx, blk, 24*time.Hour) }()
	// Two packets may be held at once (a relay's event read before
	// another's): a slow tick looks again, for liveness only.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var seen []node.OnionProgress
	var giveUp time.Time
	var advanced time.Duration
	lost := false
	advanceTo := func(at time.Time, why string) {
		if dt := at.Sub(d.clk.Now()); dt > 0 {
			d.clk.Advance(dt + time.Millisecond)
			advanced += dt
			d.t.Logf("clock moved %v (%s)", dt.Round(time.Millisecond), why)
		}
	}
	for {
		select {
		case err := <-done:
			for {
				select {
				case p := <-d.progress:
					seen = append(seen, p)
				default:
					return seen, advanced, err
				}
			}
		case p := <-d.progress:
			seen = append(seen, p)
			d.t.Logf("attempt %d: hop %d, answered %v", p.Attempt, p.Hop, p.Answered)
			if !p.Answered {
				giveUp = p.GiveUp
			}
		case relay := <-d.w.held:
			d.t.Logf("relay %s holds a packet", relay.Short())
			if atHold != nil && atHold(relay) {
				d.t.Logf("relay %s stopped: its packet is lost", relay.Short())
				lost = true
			}
		case to := <-d.w.forwardsTo:
			// A path may still run through a relay stopped earlier (the
			// client cannot know it is gone until a path through it is
			// lost): that packet is lost too.
			if d.stopped[to] {
				d.t.Logf("a packet was handed to stopped relay %s: it is lost", to.Short())
				lost = true
			}
		case <-tick.C:
		case <-d.ctx.Done():
			d.t.Fatalf("onion put: %v", d.ctx.Err())
		}
		if lost && !giveUp.IsZero() {
			advanceTo(giveUp, "past the client's give-up time")
			lost, giveUp = false, time.Time{}
			continue
		}
		var due time.Time
		for _, nd := range d.net.Running() {
			if st, ok := nd.OnionStatus(); ok && !st.NextDue.IsZero() && (due.IsZero() || st.NextDue.Before(due)) {
				due = st.NextDue
			}
		}
		if !due.IsZero() {
			advanceTo(due, "a held packet falls due")
		}
	}
}

// stop stops the running node with ID id, its address refusing from
// then on; false when no running node has that ID.
func (d *onionDriver) stop(id block.ID) bool {
	for i := range d.net.cfg.Nodes {
		if nd := d.net.Node(i); nd != nil && nd.ID() == id {
			ident, addr := nd.Identity(), nd.Contact().Addr
			if err := d.net.Stop(i); err != nil {
				d.t.Fatal(err)
			}
			refuseAt(d.t, d.ctx, addr, ident)
			d.stopped[id] = true
			return true
		}
	}
	return false
}

// guardFirst is a data block whose paths the guard starts (it is not
// among the nodes closest to the block).
func guardFirst(t *testing.T, on *node.OnionNetwork) []byte {
	for {
		if b := dataBlock(t, 3000); on.GuardServes(block.Sum(b)) {
			return b
		}
	}
}

// answeredAt is the attempt whose answer came back (0: none).
func answeredAt(ps []node.OnionProgress) int {
	for _, p := range ps {
		if p.Answered {
			return p.Attempt
		}
	}
	return 0
}

// TestOnionDelaysAndLostPacketsFollowTheNodesClock runs a delete and
// three stores through relays on one 16-node network (K = 3) whose nodes
// and client share an Offset clock, with a mean delay of ten minutes per
// hop for stores (so that a relay's delay runs out in real time before
// the test stops it only rarely; the clock moves by events):
//   - a delete through an exit with the wrong preimage fails, with the
//     right one the block is gone;
//   - a store reaches its exit only once the clock has been moved past
//     the delays the relays hold packets for, and completes;
//   - with the second relay of the path stopped while it holds the
//     packet, the client gives up at its bounded wait (on the node's
//     clock, which the test moves past it) and stores through another
//     path that avoids the relays of the lost one (the 3 nearest the
//     target, the guard and up to 4 suspects leave others only because
//     the client's pool holds nearly every relay: its growPool, right
//     after the clock moved hours, finds nobody new);
//   - with the guard stopped, the client notices at once that the first
//     relay does not take the packet, marks the guard failing (not
//     replaced: GuardGrace) and stores through a stand-in first hop.
func TestOnionDelaysAndLostPacketsFollowTheNodesClock(t *testing.T) {
	ctx := hangGuard(t)
	clk := &clock.Offset{}
	w := newOnionWatch()
	const nodes, k = 16, 3
	net := onionNet(t, ctx, nodes, k, clk, w, nil)
	c := client(t, ctx, net)
	progress := make(chan node.OnionProgress, 1<<10)
	on := openOnion(t, ctx, c, node.OnionOptions{PutDelay: 10 * time.Minute, Progress: func(p node.OnionProgress) { progress <- p }})
	d := &onionDriver{t: t, ctx: ctx, net: net, clk: clk, w: w, on: on, progress: progress, stopped: map[block.ID]bool{}}
	guard := on.Guard().ID()
	// A running node holds the block the exit stored. (Not a Get: the
	// test moves the nodes' clock by hours, past ContactFreshness, so
	// right after a move NODES answers name few contacts and a K = 3
	// lookup may end short of the holders.)
	stored := func(blk []byte) {
		t.Helper()
		id := block.Sum(blk)
		for _, nd := range net.Running() {
			if got, _, err := nd.Store().Get(ctx, id); err == nil {
				if !bytes.Equal(got, blk) {
					t.Fatalf("node %s holds other bytes under %s", nd.ID().Short(), id.Short())
				}
				return
			}
		}
		t.Fatalf("no running node holds the block %s the exit stored", id.Short())
	}

	t.Run("delete", func(t *testing.T) {
		// Deletes carry the mean of lists and fetches, 0 here: no
		// holds, no clock to move.
		preimage := [32]byte{1, 2, 3}
		blk := block.Data{Header: block.Header{HasDeletion: true, DeletionHash: block.DeletionHash(preimage)}, Payload: []byte("to be deleted through an exit")}.Encode()
		if err := c.Put(ctx, blk, 24*time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := on.Delete(ctx, block.Sum(blk), [32]byte{9}); err == nil {
			t.Fatal("a delete with the wrong preimage went through")
		}
		if err := on.Delete(ctx, block.Sum(blk), preimage); err != nil {
			t.Fatalf("delete through an exit: %v", err)
		}
		if w.exitCount(onion.KindDelete) != 2 {
			t.Fatalf("exits ran %d deletes, want 2", w.exitCount(onion.KindDelete))
		}
	})

	t.Run("delays", func(t *testing.T) {
		blk := guardFirst(t, on)
		exits := w.exitCount(onion.KindPut)
		ps, advanced, err := d.put(blk, nil)
		if err != nil {
			t.Fatalf("onion put with delays: %v", err)
		}
		if advanced == 0 {
			t.Fatal("the put completed without the clock moving: delays were not held")
		}
		if n := w.exitCount(onion.KindPut) - exits; n != 1 || answeredAt(ps) != 1 {
			t.Fatalf("%d exit requests, answered at attempt %d; want 1 on the first path", n, answeredAt(ps))
		}
		stored(blk)
	})

	t.Run("relay stopped", func(t *testing.T) {
		// The packet must be lost while the stopped relay holds it;
		// if its delay ran out in real time before the stop, it got
		// through: try again with another block (and another relay).
		for try := 1; ; try++ {
			blk := guardFirst(t, on)
			var stopped block.ID
			ps, _, err := d.put(blk, func(relay block.ID) bool {
				if stopped != (block.ID{}) || relay == guard {
					return false
				}
				stopped = relay
				return d.stop(relay)
			})
			if err != nil {
				t.Fatalf("onion put with relay %s stopped: %v", stopped.Short(), err)
			}
			stored(blk)
			if at := answeredAt(ps); at >= 2 {
				t.Logf("relay %s stopped holding the packet; answered at attempt %d", stopped.Short(), at)
				break
			}
			if try == 3 {
				t.Fatalf("three stopped relays let their packet through first: the test cannot lose one")
			}
		}
	})

	t.Run("guard stopped", func(t *testing.T) {
		if !d.stop(guard) {
			t.Fatal("the guard is no node of the network")
		}
		blk := guardFirst(t, on)
		ps, _, err := d.put(blk, nil)
		if err != nil {
			t.Fatalf("put with the guard gone: %v", err)
		}
		if !on.GuardFailing() {
			t.Fatal("the guard was not marked failing")
		}
		if on.Guard().ID() != guard {
			t.Fatal("the guard was replaced at its first failure")
		}
		if answeredAt(ps) < 2 {
			t.Fatalf("answered at attempt %d with the guard stopped, want a later path", answeredAt(ps))
		}
		stored(blk)
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.heldDropped > 0 {
		t.Errorf("%d held events dropped", w.heldDropped)
	}
}
