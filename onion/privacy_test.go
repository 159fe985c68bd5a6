package onion

import (
	"bytes"
	"testing"

	"github.com/flowmail/flowmail/block"
)

// The rows of the privacy table (docs/PROTOCOL.md 14.12), each checked on
// the same mail run in the simulation, with and without onion routing.

// TestStorersNeverSeeClients: the nodes that store, list and serve the
// blocks of a mail (the K closest to each target) see the clients' node
// IDs and addresses without onion routing, and never with it, in no role:
// not as storers, not as relays of the same operation.
func TestStorersNeverSeeClients(t *testing.T) {
	seed := testSeed(t)
	for _, onion := range []bool{false, true} {
		s := newSim(t, seed, onion)
		m := runMail(t, s)
		clients := []*simNode{m.sender, m.recipient}
		sawClient := 0
		for _, op := range s.ops {
			for _, st := range s.closest(op.target) {
				for _, o := range st.seen {
					if o.op != op {
						continue
					}
					for _, c := range clients {
						if o.peer == c || o.peer.id == c.id || o.peer.addr == c.addr {
							sawClient++
							if onion {
								t.Fatalf("%s: storer %s saw client %s (%s) as a %s peer", op.name, st.id.Short(), c.id.Short(), c.addr, o.kind)
							}
						}
					}
				}
			}
		}
		// Every storage request reached a storer from someone.
		requests := 0
		for _, n := range s.full {
			for _, o := range n.seen {
				if o.kind != "onion" {
					requests++
					if onion && (o.peer.client != nil) {
						t.Fatalf("storer %s got a %s from client %s", n.id.Short(), o.kind, o.peer.id.Short())
					}
				}
			}
		}
		if requests == 0 {
			t.Fatalf("onion %v: no storage request was observed", onion)
		}
		if !onion && sawClient == 0 {
			t.Fatal("without onion routing the storers never saw a client: the observation is broken")
		}
		t.Logf("onion %v: %d storage requests observed, %d of them from a client", onion, requests, sawClient)
	}
}

// TestRelaysLearnOnlyTheirNeighbours scans every byte a relay could read
// of every packet it opened (what came, what it hands on, its command and,
// at an exit, the body) for the node IDs and addresses of every other
// party of the operation: only the previous hop (from the link) and the
// next (from the command, or the reply blocks at an exit) may appear; and
// only the exit may see what the operation is about.
func TestRelaysLearnOnlyTheirNeighbours(t *testing.T) {
	s := newSim(t, testSeed(t), true)
	m := runMail(t, s)
	if len(s.views) < 30 {
		t.Fatalf("only %d layers opened", len(s.views))
	}
	exits := 0
	for _, v := range s.views {
		if v.op == nil || v.prev == nil {
			t.Fatal("a layer was opened outside an operation")
		}
		allowed := map[block.ID]bool{v.relay.id: true, v.prev.id: true}
		if f := v.output.Forward; f != nil {
			allowed[f.To] = true
			if want := pathNext(v); f.To != want {
				t.Fatalf("%s: relay %s forwards to %s, the path's next hop is %s", v.op.name, v.relay.id.Short(), f.To.Short(), want.Short())
			}
		} else {
			exits++
			body, err := ParseExitBody(v.body)
			if err != nil {
				t.Fatal(err)
			}
			for _, sb := range body.SURBs {
				allowed[sb.FirstHop] = true
			}
		}
		parties := []*simNode{v.op.client}
		for _, h := range append(append([]Hop{}, v.op.fwd...), v.op.back...) {
			parties = append(parties, s.byID[h.ID()])
		}
		readable := [][]byte{v.in, v.out, v.body}
		if raw, err := v.cmd.Encode(); err == nil {
			readable = append(readable, raw[:])
		}
		for _, p := range parties {
			if allowed[p.id] {
				continue
			}
			ip := p.addr.Addr().As16()
			for _, r := range readable {
				if bytes.Contains(r, p.id[:]) || bytes.Contains(r, ip[:]) {
					t.Fatalf("%s: relay %s (prev %s) can read the ID or address of %s", v.op.name, v.relay.id.Short(), v.prev.id.Short(), p.id.Short())
				}
			}
		}
		if v.output.Forward != nil {
			for _, secret := range [][]byte{v.op.target[:], m.address[:]} {
				for _, r := range readable {
					if bytes.Contains(r, secret) {
						t.Fatalf("%s: forwarding relay %s can read the target", v.op.name, v.relay.id.Short())
					}
				}
			}
		}
	}
	if exits == 0 {
		t.Fatal("no exit opened a body")
	}
	// The check can fail: the exit of a LIST reads the address listed.
	found := false
	for _, v := range s.views {
		if v.output.Exit != nil && bytes.Contains(v.body, m.address[:]) {
			found = true
		}
	}
	if !found {
		t.Fatal("no exit read the listed address: the scan finds nothing at all")
	}
}

// TestRelayPacketsHaveOneLength: with onion routing every message between
// nodes that is part of a path (requests, answers, cover, in parts or
// whole) is PacketSize bytes; without it, message lengths tell operations
// apart.
func TestRelayPacketsHaveOneLength(t *testing.T) {
	seed := testSeed(t)
	for _, onion := range []bool{false, true} {
		s := newSim(t, seed, onion)
		runMail(t, s)
		clientSizes := map[int]bool{}
		onionPackets := 0
		for _, w := range s.wire {
			if w.kind == "onion" {
				onionPackets++
				if w.size != PacketSize {
					t.Fatalf("a %d-byte relay packet from %s to %s", w.size, w.from.id.Short(), w.to.id.Short())
				}
			}
			if w.from.client != nil || w.to.client != nil {
				clientSizes[w.size] = true
			}
		}
		switch {
		case onion && (onionPackets < 30 || len(clientSizes) != 1):
			t.Fatalf("%d relay packets, clients' links carried %d sizes", onionPackets, len(clientSizes))
		case !onion && len(clientSizes) < 3:
			t.Fatalf("without onion routing the clients sent only %d sizes", len(clientSizes))
		}
		t.Logf("onion %v: %d relay packets; sizes on clients' links: %v", onion, onionPackets, clientSizes)
	}
}

// TestRelayCannotTellItsPosition compares what relays at each place of a
// path see: the same length, a forward command (but at the exit), and for
// the rest of the header, which is all that could differ, bytes with no
// structure: a few zero bytes, no long runs, whatever the place, forward
// path or reply path. (A header padded with zeros, or filler left without
// keystream, would show its place here.)
func TestRelayCannotTellItsPosition(t *testing.T) {
	s := newSim(t, testSeed(t), true)
	runMail(t, s)
	type place struct {
		reply bool
		index int
	}
	count := map[place]int{}
	for _, v := range s.views {
		p := place{index: -1}
		for i, h := range v.op.fwd {
			if h.ID() == v.relay.id && (i == 0 && v.prev == v.op.client || i > 0 && v.prev.id == v.op.fwd[i-1].ID()) {
				p = place{false, i}
			}
		}
		for i, h := range v.op.back {
			if h.ID() == v.relay.id && p.index < 0 && (i == 0 || v.prev.id == v.op.back[i-1].ID()) {
				p = place{true, i}
			}
		}
		if p.index < 0 {
			t.Fatalf("%s: relay %s is on neither path", v.op.name, v.relay.id.Short())
		}
		count[p]++
		if len(v.in) != PacketSize {
			t.Fatalf("%v: %d bytes", p, len(v.in))
		}
		if last := !p.reply && p.index == Hops-1; (v.cmd.Type == Exit) != last {
			t.Fatalf("%v: command type %d", p, v.cmd.Type)
		}
		rest := v.in[headerOffset+SlotSize : payloadOffset]
		zeros, run, longest := 0, 1, 1
		for i, b := range rest {
			if b == 0 {
				zeros++
			}
			if i > 0 && b == rest[i-1] {
				run++
				longest = max(longest, run)
			} else {
				run = 1
			}
		}
		// 2432 uniform bytes: 9.5 zeros expected (sd 3.1; 40 is ten sd
		// away), and a run of 7 equal bytes somewhere has probability
		// 9e-12.
		if zeros > 40 || longest > 6 {
			t.Fatalf("%v: rest of header has %d zero bytes, a run of %d equal bytes", p, zeros, longest)
		}
	}
	for _, p := range []place{{false, 0}, {false, 1}, {false, 2}, {true, 0}, {true, 1}, {true, 2}} {
		if count[p] == 0 {
			t.Fatalf("no relay at %+v was observed", p)
		}
	}
	t.Logf("layers opened per place: %v", count)
}

// pathNext is the node after v's relay on its operation's paths, found
// by its place (the relay and the one before it): the next relay of the
// forward or reply path, or the client after the last reply hop.
func pathNext(v view) block.ID {
	exit := v.op.fwd[len(v.op.fwd)-1].ID()
	for _, p := range []struct {
		hops  []Hop
		first block.ID // who sends to hops[0]
	}{{v.op.fwd, v.op.client.id}, {v.op.back, exit}} {
		for i, h := range p.hops {
			before := p.first
			if i > 0 {
				before = p.hops[i-1].ID()
			}
			if h.ID() != v.relay.id || before != v.prev.id {
				continue
			}
			if i+1 < len(p.hops) {
				return p.hops[i+1].ID()
			}
			return v.op.client.id
		}
	}
	return block.ID{}
}
