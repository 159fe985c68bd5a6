package onion

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
)

// TestRequestAndReplyThroughSixRelays sends a GET from a client through
// relays 0..2 with two reply blocks over relays 3..5: the exit gets the
// request, each answer reaches the client once, a third answer finds no
// reply block.
func TestRequestAndReplyThroughSixRelays(t *testing.T) {
	seed := testSeed(t)
	rs := make([]*testRelay, 6)
	for i := range rs {
		rs[i] = newTestRelay(t, i)
	}
	c := newTestClient(t, 100, seed)
	get := Get{ID: block.ID{1, 2, 3}, Offset: 7}
	sent, err := c.Send(testNow, get, hops(rs[0], rs[1], rs[2]), hops(rs[3], rs[4], rs[5]), 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	if sent.First.To != rs[0].hop.ID() || len(sent.First.Packet) != PacketSize {
		t.Fatalf("first packet to %s, %d bytes", sent.First.To.Short(), len(sent.First.Packet))
	}
	pkt := sent.First.Packet
	for i := range 2 {
		o := mustStep(t, rs[i], testNow, pkt)
		if o.Forward == nil || o.Forward.To != rs[i+1].hop.ID() || o.Forward.Addr != rs[i+1].hop.Addr {
			t.Fatalf("hop %d: output %+v, want forward to hop %d", i, o, i+1)
		}
		if len(o.Forward.Packet) != PacketSize {
			t.Fatalf("hop %d hands on %d bytes", i, len(o.Forward.Packet))
		}
		pkt = o.Forward.Packet
	}
	o := mustStep(t, rs[2], testNow, pkt)
	if o.Exit == nil {
		t.Fatalf("exit output %+v, want a request", o)
	}
	if got, ok := o.Exit.Request.(Get); !ok || got != get {
		t.Fatalf("exit got %#v, want %#v", o.Exit.Request, get)
	}
	if o.Exit.ReplyBlocks() != 2 {
		t.Fatalf("exit has %d reply blocks, want 2", o.Exit.ReplyBlocks())
	}
	for n := range 2 {
		want := GetReply{Total: 100, Offset: uint32(50 * n), Chunk: bytes.Repeat([]byte{byte(n + 1)}, 50)}
		f, err := o.Exit.Reply(want)
		if err != nil {
			t.Fatal(err)
		}
		if f.To != rs[3].hop.ID() {
			t.Fatalf("reply goes to %s, want first reply hop", f.To.Short())
		}
		pkt := f.Packet
		for i := 3; i < 6; i++ {
			o := mustStep(t, rs[i], testNow, pkt)
			wantTo := c.cfg.ID
			if i < 5 {
				wantTo = rs[i+1].hop.ID()
			}
			if o.Forward == nil || o.Forward.To != wantTo {
				t.Fatalf("reply hop %d: output %+v", i, o)
			}
			pkt = o.Forward.Packet
		}
		got, err := c.Receive(pkt)
		if err != nil {
			t.Fatalf("client opening reply %d: %v", n, err)
		}
		gr, ok := got.Reply.(GetReply)
		if got.Request != sent.Request || !ok || gr.Total != want.Total || gr.Offset != want.Offset || !bytes.Equal(gr.Chunk, want.Chunk) {
			t.Fatalf("reply %d: %+v, want %+v for request %d", n, got, want, sent.Request)
		}
		if _, err := c.Receive(pkt); !errors.Is(err, ErrUnknownReply) {
			t.Fatalf("second delivery of reply %d: %v, want ErrUnknownReply", n, err)
		}
	}
	if _, err := o.Exit.Reply(PingReply{}); !errors.Is(err, ErrNoSURB) {
		t.Fatalf("third reply: %v, want ErrNoSURB", err)
	}
	if c.Pending() != 0 {
		t.Fatalf("client still waits on %d reply blocks", c.Pending())
	}
}

func TestRelayHoldsForTheCommandDelay(t *testing.T) {
	seed := testSeed(t)
	rs := []*testRelay{newTestRelay(t, 0), newTestRelay(t, 1), newTestRelay(t, 2)}
	c := newTestClient(t, 100, seed)
	sent, err := c.Send(testNow, Drop{}, hops(rs...), nil, 0, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	r := rs[0].relay
	if err := r.Receive(testNow, sent.First.Packet); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Process(testNow); err != nil {
		t.Fatal(err)
	}
	at, ok := r.Next()
	if !ok || !at.Equal(testNow.Add(sent.Delays[0])) {
		t.Fatalf("next due %v %v, want now + %v", at, ok, sent.Delays[0])
	}
	if sent.Delays[0] > 0 {
		if _, ok := r.Due(at.Add(-time.Millisecond)); ok {
			t.Fatal("packet released before its delay")
		}
	}
	if o, ok := r.Due(at); !ok || o.Forward == nil {
		t.Fatalf("packet not released at its due time: %+v", o)
	}
}
