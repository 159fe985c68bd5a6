package onion

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
)

// forwardSpecs returns the hop specs of a plain path through rs at
// testNow, the last hop an exit, with the given delay on every hop.
func forwardSpecs(t testing.TB, rs []*testRelay, delay time.Duration) []hopSpec {
	t.Helper()
	specs := make([]hopSpec, len(rs))
	for i, r := range rs {
		cmd := Command{Type: Exit, Epoch: EpochOf(testNow), Delay: delay}
		if i < len(rs)-1 {
			cmd.Type, cmd.Next, cmd.Addr = Forward, rs[i+1].hop.ID(), rs[i+1].hop.Addr
		}
		raw, err := cmd.Encode()
		if err != nil {
			t.Fatal(err)
		}
		specs[i] = hopSpec{id: r.hop.ID(), key: r.hop.Pubkey.EncKey, cmd: raw[:], work: testWork}
	}
	return specs
}

// rawPacket seals body (BodySize bytes, not checked) to the last hop of
// specs.
func rawPacket(t testing.TB, specs []hopSpec, body []byte) []byte {
	t.Helper()
	b, err := buildHeader(specs)
	if err != nil {
		t.Fatal(err)
	}
	return assemble(b, sealBody(&b.keys[len(b.keys)-1].exit, body))
}

func pingBody(t testing.TB) []byte {
	t.Helper()
	b, err := (&ExitBody{Request: Ping{}}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRelayDropsBadPacketsAndKeepsServing feeds one relay every kind of
// bad packet, each once, then a good one: each bad packet is dropped with
// its own counted reason, and the good one still goes through.
func TestRelayDropsBadPacketsAndKeepsServing(t *testing.T) {
	testSeed(t)
	rs := []*testRelay{newTestRelay(t, 0), newTestRelay(t, 1), newTestRelay(t, 2)}
	r := rs[0]
	good := func() []byte { return rawPacket(t, forwardSpecs(t, rs, 0), pingBody(t)) }
	flip := func(pkt []byte, off int) []byte { pkt = bytes.Clone(pkt); pkt[off] ^= 0x40; return pkt }
	withCommand := func(mutate func(c []byte)) []byte {
		specs := forwardSpecs(t, rs, 0)
		cmd := bytes.Clone(specs[0].cmd)
		mutate(cmd)
		specs[0].cmd = cmd
		return rawPacket(t, specs, pingBody(t))
	}
	other := rawPacket(t, forwardSpecs(t, rs[1:], 0), pingBody(t)) // slot 0 is for relay 1
	replayed := good()
	old := func() []byte {
		specs := forwardSpecs(t, rs, 0)
		c, _ := ParseCommand(specs[0].cmd)
		c.Epoch -= 2
		raw, _ := c.Encode()
		specs[0].cmd = raw[:]
		return rawPacket(t, specs, pingBody(t))
	}()

	cases := []struct {
		name string
		pkt  []byte
		want error
	}{
		{"short", good()[:PacketSize-1], ErrPacketSize},
		{"long", append(good(), 0), ErrPacketSize},
		{"version", func() []byte { p := good(); p[0] = 2; return p }(), ErrVersion},
		{"stamp for another relay", other, ErrStampRelay},
		{"sealed command altered", flip(good(), headerOffset+sealedOffset+3), ErrLayerMAC},
		{"rest of header altered", flip(good(), headerOffset+SlotSize+100), ErrLayerMAC},
		{"unknown command type", withCommand(func(c []byte) { c[0] = 9 }), ErrCommand},
		{"reserved byte set", withCommand(func(c []byte) { c[63] = 1 }), ErrCommand},
		{"delay above the maximum", withCommand(func(c []byte) { c[6], c[7], c[8], c[9] = 0, 0x09, 0x27, 0xc1 }), ErrDelay},
		{"epoch too old", old, ErrEpoch},
		{"first copy", replayed, nil},
		{"replay", bytes.Clone(replayed), ErrReplay},
	}
	for _, c := range cases {
		err := r.relay.Receive(testNow, c.pkt)
		if err == nil {
			var ok bool
			ok, err = r.relay.Process(testNow)
			if !ok {
				t.Fatalf("%s: queued but not processed", c.name)
			}
		}
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Fatalf("%s: %v, want %v", c.name, err, c.want)
		}
		if c.want != nil {
			if n := r.relay.Stats().DroppedFor(c.want); n == 0 {
				t.Fatalf("%s: no drop counted for %v", c.name, c.want)
			}
		}
	}
	st := r.relay.Stats()
	for _, reason := range []error{ErrVersion, ErrStampRelay, ErrCommand, ErrDelay, ErrEpoch, ErrReplay} {
		if want := uint64(1) + boolU(reason == ErrCommand); st.DroppedFor(reason) != want {
			t.Errorf("%v counted %d times, want %d", reason, st.DroppedFor(reason), want)
		}
	}
	if st.DroppedFor(ErrPacketSize) != 2 || st.DroppedFor(ErrLayerMAC) != 2 {
		t.Errorf("size drops %d, MAC drops %d, want 2 and 2", st.DroppedFor(ErrPacketSize), st.DroppedFor(ErrLayerMAC))
	}
	// Still serving: a fresh packet goes through, and so does the first
	// copy of the replayed one.
	o := mustStep(t, r, testNow, good())
	if o.Forward == nil || o.Forward.To != rs[1].hop.ID() {
		t.Fatalf("good packet after the bad ones: %+v", o)
	}
	if o, ok := r.relay.Due(testNow); !ok || o.Forward == nil {
		t.Fatal("first copy of the replayed packet was not forwarded")
	}
}

func boolU(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

func TestRelayDropsWeakStamps(t *testing.T) {
	testSeed(t)
	id := testIdentity(t, 0)
	r, err := NewRelay(RelayConfig{ID: id.ID(), Key: id.EncryptionKey(), MinWork: 40})
	if err != nil {
		t.Fatal(err)
	}
	rs := []*testRelay{newTestRelay(t, 0), newTestRelay(t, 1)}
	pkt := rawPacket(t, forwardSpecs(t, rs, 0), pingBody(t))
	if err := r.Receive(testNow, pkt); !errors.Is(err, ErrStampWork) {
		t.Fatalf("stamp of %d bits against a floor of 40: %v", stampWorkOf(pkt, id.ID()), err)
	}
	if r.Stats().DroppedFor(ErrStampWork) != 1 || r.Pending() != 0 {
		t.Fatalf("weak stamp: %d drops counted, %d queued", r.Stats().DroppedFor(ErrStampWork), r.Pending())
	}
}

func stampWorkOf(pkt []byte, relay block.ID) int {
	slot := pkt[headerOffset:]
	return stampWork(relay, slot[encOffset:encOffset+EncSize], slot[stampOffset+8:stampOffset+16])
}

// TestExitDropsTamperedAndMalformedBodies: a payload altered on the way
// passes the hops before the exit (their tags cover the header only) and
// fails at the exit's end-to-end tag; a well-sealed body that does not
// parse is dropped too.
func TestExitDropsTamperedAndMalformedBodies(t *testing.T) {
	testSeed(t)
	rs := []*testRelay{newTestRelay(t, 0), newTestRelay(t, 1), newTestRelay(t, 2)}
	run := func(pkt []byte) error {
		for i, r := range rs {
			o, err := step(t, r, testNow, pkt)
			if err != nil {
				if i != len(rs)-1 {
					t.Fatalf("hop %d dropped: %v", i, err)
				}
				return err
			}
			if o.Forward != nil {
				pkt = o.Forward.Packet
			}
		}
		return nil
	}
	pkt := rawPacket(t, forwardSpecs(t, rs, 0), pingBody(t))
	pkt[payloadOffset+500] ^= 1
	if err := run(pkt); !errors.Is(err, ErrExitMAC) {
		t.Fatalf("altered payload: %v, want ErrExitMAC", err)
	}
	bad := pingBody(t)
	bad[BodySize-1] = 1 // padding not zero
	if err := run(rawPacket(t, forwardSpecs(t, rs, 0), bad)); !errors.Is(err, ErrExitBody) {
		t.Fatalf("bad body: %v, want ErrExitBody", err)
	}
	exit := rs[2].relay.Stats()
	if exit.DroppedFor(ErrExitMAC) != 1 || exit.DroppedFor(ErrExitBody) != 1 {
		t.Fatalf("exit counted %d MAC and %d body drops", exit.DroppedFor(ErrExitMAC), exit.DroppedFor(ErrExitBody))
	}
}

// TestReplyBlockUsedTwiceIsDropped: an exit that answers twice through
// one reply block gets the second answer dropped at the first reply hop,
// as a reused block, not a replay.
func TestReplyBlockUsedTwiceIsDropped(t *testing.T) {
	seed := testSeed(t)
	rs := []*testRelay{newTestRelay(t, 3), newTestRelay(t, 4), newTestRelay(t, 5)}
	c := newTestClient(t, 100, seed)
	surb, _, _, err := c.newSURB(EpochOf(testNow), hops(rs...), 0)
	if err != nil {
		t.Fatal(err)
	}
	first, err := SealReply(&surb, PingReply{})
	if err != nil {
		t.Fatal(err)
	}
	second, err := SealReply(&surb, PutReply{Stored: 3})
	if err != nil {
		t.Fatal(err)
	}
	mustStep(t, rs[0], testNow, first)
	if _, err := step(t, rs[0], testNow, second); !errors.Is(err, ErrReplyReused) {
		t.Fatalf("second use: %v, want ErrReplyReused", err)
	}
	if _, err := step(t, rs[0], testNow, bytes.Clone(first)); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay of the first use: %v, want ErrReplay", err)
	}
}

// TestQueueServesMostWorkFirstAndDropsTheLeast fills a small queue with
// packets of known work: processing order follows work, and a full queue
// drops the packet with the least.
func TestQueueServesMostWorkFirstAndDropsTheLeast(t *testing.T) {
	testSeed(t)
	rs := []*testRelay{newTestRelay(t, 0), newTestRelay(t, 1)}
	id := rs[0].ident
	r, err := NewRelay(RelayConfig{ID: id.ID(), Key: id.EncryptionKey(), MinWork: 1, QueueSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	// Packets whose stamps carry exactly 1..5 bits: stamps ground to 0
	// bits have work w with probability 2^-(w+1).
	byWork := map[int][]byte{}
	for len(byWork) < 5 {
		specs := forwardSpecs(t, rs, 0)
		specs[0].work = 0
		pkt := rawPacket(t, specs, pingBody(t))
		if w := stampWorkOf(pkt, id.ID()); w >= 1 && w <= 5 && byWork[w] == nil {
			byWork[w] = pkt
		}
	}
	var dropped []int
	for _, w := range []int{2, 4, 1, 5, 3} {
		err := r.Receive(testNow, byWork[w])
		if errors.Is(err, ErrOutbid) {
			dropped = append(dropped, w)
		} else if err != nil {
			t.Fatal(err)
		}
	}
	// 2, 4, 1 fill the queue; 5 takes the place of 1, then 3 that of 2.
	if r.Stats().DroppedFor(ErrOutbid) != 2 || len(dropped) != 0 {
		t.Fatalf("%d outbid drops, arrivals refused %v; want 2 queued packets dropped and no arrival", r.Stats().DroppedFor(ErrOutbid), dropped)
	}
	var served []int
	r.observe = func(v layerView) { served = append(served, stampWorkOf(v.in, id.ID())) }
	for {
		ok, err := r.Process(testNow)
		if !ok {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(served) != "[5 4 3]" {
		t.Fatalf("served work %v, want [5 4 3]", served)
	}
	// A packet with no more work than everything queued is itself
	// dropped.
	r2, err := NewRelay(RelayConfig{ID: id.ID(), Key: id.EncryptionKey(), MinWork: 1, QueueSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.Receive(testNow, byWork[5]); err != nil {
		t.Fatal(err)
	}
	if err := r2.Receive(testNow, byWork[1]); !errors.Is(err, ErrOutbid) {
		t.Fatalf("weaker packet at a full queue: %v, want ErrOutbid", err)
	}
}

// epochPacket is a ping through rs whose first command names epoch e.
func epochPacket(t testing.TB, rs []*testRelay, e uint32, delay time.Duration) []byte {
	t.Helper()
	specs := forwardSpecs(t, rs, delay)
	c, err := ParseCommand(specs[0].cmd)
	if err != nil {
		t.Fatal(err)
	}
	c.Epoch = e
	raw, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	specs[0].cmd = raw[:]
	return rawPacket(t, specs, pingBody(t))
}

// TestEpochWindowBoundsTheReplayCache: a relay accepts the previous,
// current and next epoch; once an epoch leaves the window its tags are
// forgotten, and a replay of its packets is refused by the epoch rule.
func TestEpochWindowBoundsTheReplayCache(t *testing.T) {
	testSeed(t)
	rs := []*testRelay{newTestRelay(t, 0), newTestRelay(t, 1)}
	r := rs[0]
	cur := EpochOf(testNow)
	for _, c := range []struct {
		e    uint32
		want error
	}{{cur - 2, ErrEpoch}, {cur - 1, nil}, {cur, nil}, {cur + 1, nil}, {cur + 2, ErrEpoch}} {
		_, err := step(t, r, testNow, epochPacket(t, rs, c.e, 0))
		if !errors.Is(err, c.want) || (err == nil) != (c.want == nil) {
			t.Fatalf("epoch %+d: %v, want %v", int(c.e)-int(cur), err, c.want)
		}
	}
	if n := r.relay.replay.size(); n != 3 {
		t.Fatalf("%d tags remembered, want 3", n)
	}
	pkt := epochPacket(t, rs, cur, 0)
	mustStep(t, r, testNow, bytes.Clone(pkt))
	later := testNow.Add(2 * Epoch)
	if _, err := step(t, r, later, pkt); !errors.Is(err, ErrEpoch) {
		t.Fatalf("replay two epochs later: %v, want ErrEpoch", err)
	}
	if n := r.relay.replay.size(); n != 1 {
		t.Fatalf("two epochs later %d tags remembered, want 1 (epoch %+d only)", n, 1)
	}
}

func TestFullReplayCacheFailsClosed(t *testing.T) {
	testSeed(t)
	rs := []*testRelay{newTestRelay(t, 0), newTestRelay(t, 1)}
	id := rs[0].ident
	r, err := NewRelay(RelayConfig{ID: id.ID(), Key: id.EncryptionKey(), MinWork: testWork, ReplayEntries: 2})
	if err != nil {
		t.Fatal(err)
	}
	cur := EpochOf(testNow)
	for i, want := range []error{nil, nil, ErrReplayFull} {
		if err := r.Receive(testNow, epochPacket(t, rs, cur, 0)); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Process(testNow); !errors.Is(err, want) || (err == nil) != (want == nil) {
			t.Fatalf("packet %d: %v, want %v", i, err, want)
		}
	}
	// Another epoch has its own room.
	if err := r.Receive(testNow, epochPacket(t, rs, cur+1, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Process(testNow); err != nil {
		t.Fatalf("next epoch: %v", err)
	}
}

func TestHoldQueueDropsTheLeastWork(t *testing.T) {
	testSeed(t)
	rs := []*testRelay{newTestRelay(t, 0), newTestRelay(t, 1)}
	id := rs[0].ident
	r, err := NewRelay(RelayConfig{ID: id.ID(), Key: id.EncryptionKey(), MinWork: testWork, HoldSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	a := rawPacket(t, forwardSpecs(t, rs, time.Minute), pingBody(t))
	b := rawPacket(t, forwardSpecs(t, rs, time.Minute), pingBody(t))
	wa, wb := stampWorkOf(a, id.ID()), stampWorkOf(b, id.ID())
	for _, p := range [][]byte{a, b} {
		if err := r.Receive(testNow, p); err != nil {
			t.Fatal(err)
		}
	}
	// Processed in order of work: the second one processed finds the
	// hold full and wins only with strictly more work, which it cannot
	// have (it was served second).
	_, err1 := r.Process(testNow)
	_, err2 := r.Process(testNow)
	if err1 != nil || !errors.Is(err2, ErrHoldFull) {
		t.Fatalf("works %d and %d: %v, %v; want nil then ErrHoldFull", wa, wb, err1, err2)
	}
	if o, ok := r.Due(testNow.Add(time.Hour)); !ok || o.Forward == nil {
		t.Fatal("held packet lost")
	}
}

// TestQueueBoundsEachSource: a source with MaxQueuedPerSource packets
// waiting is refused (ErrSourceFull, counted) while another source's
// packet still gets in, and the flooder gets room again once the relay
// has served its packets.
func TestQueueBoundsEachSource(t *testing.T) {
	testSeed(t)
	rs := []*testRelay{newTestRelay(t, 0), newTestRelay(t, 1)}
	id := rs[0].ident
	r, err := NewRelay(RelayConfig{ID: id.ID(), Key: id.EncryptionKey(), MinWork: testWork, MaxQueuedPerSource: 2})
	if err != nil {
		t.Fatal(err)
	}
	pkt := func() []byte { return rawPacket(t, forwardSpecs(t, rs, 0), pingBody(t)) }
	for i := range 2 {
		if err := r.ReceiveFrom(testNow, pkt(), "flood"); err != nil {
			t.Fatalf("flooder's packet %d: %v", i, err)
		}
	}
	if err := r.ReceiveFrom(testNow, pkt(), "flood"); !errors.Is(err, ErrSourceFull) {
		t.Fatalf("third queued packet of one source: %v, want ErrSourceFull", err)
	}
	if err := r.ReceiveFrom(testNow, pkt(), "other"); err != nil {
		t.Fatalf("another source while the flooder is full: %v", err)
	}
	if got := r.Stats().DroppedFor(ErrSourceFull); got != 1 {
		t.Fatalf("%d drops counted for ErrSourceFull, want 1", got)
	}
	if r.Queued("flood") != 2 || r.Queued("other") != 1 {
		t.Fatalf("queued flood %d other %d, want 2 and 1", r.Queued("flood"), r.Queued("other"))
	}
	for {
		if ok, _ := r.Process(testNow); !ok {
			break
		}
	}
	if r.Queued("flood") != 0 {
		t.Fatalf("%d flood packets counted after serving all", r.Queued("flood"))
	}
	if err := r.ReceiveFrom(testNow, pkt(), "flood"); err != nil {
		t.Fatalf("flooder after its packets were served: %v", err)
	}
}
