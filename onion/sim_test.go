package onion

import (
	"bytes"
	"container/heap"
	"encoding/binary"
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

// An in-memory network of relay and client state machines on a virtual
// clock, for the privacy table of docs/PROTOCOL.md 14.12. Every node
// records what it observed; the simulation also knows, for each packet,
// which operation it belongs to, which the nodes do not.

const (
	simFullNodes = 20
	simK         = 5
	simD         = 10 // bits an index block shares with its recipient
	simLink      = 5 * time.Millisecond
	simDelay     = 2 * time.Second // mean per-hop delay
)

type simNode struct {
	id     block.ID
	addr   netip.AddrPort
	ident  *identity.Identity
	relay  *Relay  // full nodes
	client *Client // client-mode processes
	store  map[block.ID]simStored
	seen   []observation
	guard  *Guard
	asm    Assembler // as an exit
	// replies a client got, by request number
	replies map[uint64][]Reply
}

type simStored struct {
	blk      []byte
	storedAt uint64
}

// operation is one thing a client does; target is what its paths avoid
// and what its storers hold.
type operation struct {
	name      string
	client    *simNode
	target    block.ID
	fwd, back []Hop
	request   uint64
}

// observation is one thing a node saw: a packet or a request from peer.
type observation struct {
	op   *operation
	peer *simNode
	kind string // "onion", or the storage request: "store", "list", "get"
	size int
}

// wireRecord is one message on a link.
type wireRecord struct {
	from, to *simNode
	kind     string // "onion" or "kad"
	size     int
}

// view is a relay's view of one layer, with what the simulation knows.
type view struct {
	relay *simNode
	prev  *simNode
	op    *operation
	layerView
}

type event struct {
	at  time.Time
	seq uint64
	fn  func()
}

type eventQueue []event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(event)) }
func (q *eventQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

type sim struct {
	t      *testing.T
	rnd    *mrand.Rand
	now    time.Time
	seq    uint64
	events eventQueue
	full   []*simNode
	byID   map[block.ID]*simNode
	wire   []wireRecord
	views  []view
	onion  bool
	// op of each packet or exit request in flight, by its first byte's
	// address (packets) or pointer (requests): simulation bookkeeping.
	pktOp  map[*byte]*operation
	exitOp map[*ExitRequest]*operation
	// current op and sender while a relay processes a delivery
	curOp   *operation
	curPrev *simNode
	curNode *simNode
	ops     []*operation
}

func newSim(t *testing.T, seed uint64, onion bool) *sim {
	s := &sim{
		t: t, rnd: mrand.New(mrand.NewPCG(seed, 99)), now: testNow, onion: onion,
		byID: map[block.ID]*simNode{}, pktOp: map[*byte]*operation{}, exitOp: map[*ExitRequest]*operation{},
	}
	for i := range simFullNodes {
		tr := newTestRelay(t, i)
		n := &simNode{id: tr.hop.ID(), addr: tr.hop.Addr, ident: tr.ident, relay: tr.relay, store: map[block.ID]simStored{}}
		n.relay.observe = func(v layerView) {
			s.views = append(s.views, view{relay: n, prev: s.curPrev, op: s.curOp, layerView: v})
			if v.output.Forward != nil {
				s.pktOp[&v.output.Forward.Packet[0]] = s.curOp
			} else {
				s.exitOp[v.output.Exit] = s.curOp
			}
		}
		s.full = append(s.full, n)
		s.byID[n.id] = n
	}
	return s
}

// newClient is a client-mode process: a throwaway identity, no relay.
func (s *sim) newClient(n int) *simNode {
	id := testIdentity(s.t, 500+n)
	// Reachable at its address, so the last reply hop's command names
	// it: the test checks that no other relay can read it.
	c, err := NewClient(ClientConfig{ID: id.ID(), Addr: testAddr(500 + n), Work: testWork, Rand: mrand.New(mrand.NewPCG(s.rnd.Uint64(), 1))})
	if err != nil {
		s.t.Fatal(err)
	}
	node := &simNode{id: id.ID(), addr: testAddr(500 + n), ident: id, client: c, replies: map[uint64][]Reply{}}
	if node.guard, _, err = KeepGuard(s.rnd, nil, s.contacts(), s.now); err != nil {
		s.t.Fatal(err)
	}
	s.byID[node.id] = node
	return node
}

func (s *sim) contacts() []Hop {
	var hs []Hop
	for _, n := range s.full {
		hs = append(hs, Hop{Pubkey: n.ident.Public(), Addr: n.addr})
	}
	return hs
}

func (s *sim) at(t time.Time, fn func()) {
	s.seq++
	heap.Push(&s.events, event{at: t, seq: s.seq, fn: fn})
}

// run processes events until none is left.
func (s *sim) run() {
	for s.events.Len() > 0 {
		e := heap.Pop(&s.events).(event)
		if e.at.After(s.now) {
			s.now = e.at
		}
		e.fn()
	}
}

// send puts an onion packet on the link from -> to.
func (s *sim) send(from, to *simNode, pkt []byte, op *operation) {
	s.wire = append(s.wire, wireRecord{from: from, to: to, kind: "onion", size: len(pkt)})
	s.at(s.now.Add(simLink), func() { s.deliver(from, to, pkt, op) })
}

func (s *sim) deliver(from, to *simNode, pkt []byte, op *operation) {
	to.seen = append(to.seen, observation{op: op, peer: from, kind: "onion", size: len(pkt)})
	if to.client != nil {
		got, err := to.client.Receive(pkt)
		if err != nil {
			s.t.Fatalf("client %s dropped a reply: %v", to.id.Short(), err)
		}
		to.replies[got.Request] = append(to.replies[got.Request], got.Reply)
		return
	}
	if err := to.relay.Receive(s.now, pkt); err != nil {
		s.t.Fatalf("relay %s refused a packet: %v", to.id.Short(), err)
	}
	s.curOp, s.curPrev, s.curNode = op, from, to
	for {
		ok, err := to.relay.Process(s.now)
		if err != nil {
			s.t.Fatalf("relay %s dropped a packet: %v", to.id.Short(), err)
		}
		if !ok {
			break
		}
	}
	s.curOp, s.curPrev, s.curNode = nil, nil, nil
	if at, ok := to.relay.Next(); ok {
		s.at(at, func() { s.wake(to) })
	}
}

func (s *sim) wake(n *simNode) {
	for {
		o, ok := n.relay.Due(s.now)
		if !ok {
			if at, ok := n.relay.Next(); ok {
				s.at(at, func() { s.wake(n) })
			}
			return
		}
		if o.Forward != nil {
			op := s.pktOp[&o.Forward.Packet[0]]
			s.send(n, s.byID[o.Forward.To], o.Forward.Packet, op)
			continue
		}
		op := s.exitOp[o.Exit]
		s.execute(n, op, o.Exit.Request, o.Exit.TakeReplyBlocks(), func(b *SURB, r Reply) {
			pkt, err := SealReply(b, r)
			if err != nil {
				s.t.Fatalf("exit %s: %v", n.id.Short(), err)
			}
			s.send(n, s.byID[b.FirstHop], pkt, op)
		})
	}
}

// closest returns the simK full nodes closest to target.
func (s *sim) closest(target block.ID) []*simNode {
	ns := slices.Clone(s.full)
	slices.SortFunc(ns, func(a, b *simNode) int {
		da, db := block.Xor(a.id, target), block.Xor(b.id, target)
		return bytes.Compare(da[:], db[:])
	})
	return ns[:simK]
}

// kad records a storage request from by to a storer.
func (s *sim) kad(by, storer *simNode, op *operation, kind string, size int) {
	s.wire = append(s.wire, wireRecord{from: by, to: storer, kind: "kad", size: size})
	storer.seen = append(storer.seen, observation{op: op, peer: by, kind: kind, size: size})
}

// execute does what an exit (or, without onion routing, the client
// itself) does for req, answering through each of surbs once.
func (s *sim) execute(by *simNode, op *operation, req Request, surbs []SURB, answer func(*SURB, Reply)) {
	switch r := req.(type) {
	case Put:
		blk, _, replies, err := by.asm.Add(s.now, r, surbs)
		if err != nil {
			s.t.Fatalf("%s: %v", op.name, err)
		}
		if blk == nil {
			return
		}
		for _, st := range s.closest(r.ID) {
			s.kad(by, st, op, "store", 5+len(blk))
			st.store[r.ID] = simStored{blk: blk, storedAt: uint64(s.now.Unix())}
		}
		for i := range replies {
			answer(&replies[i], PutReply{Stored: simK})
		}
	case List:
		var entries []ListEntry
		seen := map[block.ID]bool{}
		for _, st := range s.closest(r.Target) {
			s.kad(by, st, op, "list", 1+listFieldsSize)
			for id, b := range st.store {
				if block.CommonPrefixLen(id, r.Target) >= int(r.Bits) && b.storedAt >= r.Since && !seen[id] {
					seen[id] = true
					entries = append(entries, ListEntry{ID: id, StoredAt: b.storedAt})
				}
			}
		}
		slices.SortFunc(entries, func(a, b ListEntry) int { return bytes.Compare(a.ID[:], b.ID[:]) })
		for i := range surbs {
			answer(&surbs[i], ListReply{Entries: entries})
			break
		}
	case Get:
		var blk []byte
		for _, st := range s.closest(r.ID) {
			s.kad(by, st, op, "get", 33)
			if b, ok := st.store[r.ID]; ok {
				blk = b.blk
				break
			}
		}
		off := int(r.Offset)
		for i := range surbs {
			if blk == nil {
				answer(&surbs[i], ErrorReply{Request: KindGet, Code: 4})
				return
			}
			if off >= len(blk) {
				return
			}
			n := min(len(blk)-off, MaxGetChunk)
			answer(&surbs[i], GetReply{Total: uint32(len(blk)), Offset: uint32(off), Chunk: blk[off : off+n]})
			off += n
		}
	case Ping:
		for i := range surbs {
			answer(&surbs[i], PingReply{})
		}
	case Drop:
	}
}

// do runs one operation of client c about target and returns its
// replies once the network is quiet.
func (s *sim) do(name string, c *simNode, target block.ID, req Request, answers int) []Reply {
	return s.doVia(name, c, target, req, answers, nil, nil)
}

// doVia is do over given paths; nil paths are chosen for the operation.
func (s *sim) doVia(name string, c *simNode, target block.ID, req Request, answers int, fwd, back []Hop) []Reply {
	op := &operation{name: name, client: c, target: target, fwd: fwd, back: back}
	s.ops = append(s.ops, op)
	if !s.onion {
		// The client does the exit's work itself; its answers stand in
		// for reply blocks.
		var got []Reply
		s.execute(c, op, req, make([]SURB, answers), func(_ *SURB, r Reply) { got = append(got, r) })
		return got
	}
	var guard *Hop
	if c.guard.Usable(s.now) {
		guard = &c.guard.Hop
	}
	var err error
	if op.fwd == nil {
		if op.fwd, err = ForwardPath(s.rnd, s.contacts(), target, simK, guard); err != nil {
			s.t.Fatal(err)
		}
	}
	if op.back == nil {
		if op.back, err = ReplyPath(s.rnd, s.contacts(), target, simK, guard); err != nil {
			s.t.Fatal(err)
		}
	}
	sent, err := c.client.Send(s.now, req, op.fwd, op.back, answers, simDelay)
	if err != nil {
		s.t.Fatal(err)
	}
	op.request = sent.Request
	s.send(c, s.byID[sent.First.To], sent.First.Packet, op)
	s.run()
	got := c.replies[sent.Request]
	if len(got) != answers {
		s.t.Fatalf("%s: %d answers of %d came back", name, len(got), answers)
	}
	return got
}

// put stores blk from client c, in parts when it is large.
func (s *sim) put(name string, c *simNode, blk []byte) {
	parts, err := SplitPut(blk, 86400, 1)
	if err != nil {
		s.t.Fatal(err)
	}
	id := block.Sum(blk)
	// Every part goes to the same exit, which assembles them: one path.
	var fwd []Hop
	if s.onion {
		var guard *Hop
		if c.guard.Usable(s.now) {
			guard = &c.guard.Hop
		}
		if fwd, err = ForwardPath(s.rnd, s.contacts(), id, simK, guard); err != nil {
			s.t.Fatal(err)
		}
	}
	for i, p := range parts {
		answers := 0
		if i == len(parts)-1 {
			answers = 1
		}
		got := s.doVia(fmt.Sprintf("%s part %d", name, i), c, id, p, answers, fwd, nil)
		if i == len(parts)-1 {
			if pr, ok := got[0].(PutReply); !ok || pr.Stored != simK {
				s.t.Fatalf("%s: answer %+v", name, got[0])
			}
		}
	}
}

// get fetches a block by ID from client c, range by range.
func (s *sim) get(name string, c *simNode, id block.ID) []byte {
	var blk []byte
	for {
		answers := 1
		if blk != nil {
			answers = min(MaxSURBs, (cap(blk)-len(blk)+MaxGetChunk-1)/MaxGetChunk)
		}
		got := s.do(name, c, id, Get{ID: id, Offset: uint32(len(blk))}, answers)
		var ranges []GetReply
		for _, r := range got {
			g, ok := r.(GetReply)
			if !ok {
				s.t.Fatalf("%s: answer %+v", name, r)
			}
			ranges = append(ranges, g)
		}
		// Answers cross the network on their own delays: in any order.
		slices.SortFunc(ranges, func(a, b GetReply) int { return int(a.Offset) - int(b.Offset) })
		for _, g := range ranges {
			if blk == nil {
				blk = make([]byte, 0, g.Total)
			}
			if int(g.Offset) != len(blk) {
				s.t.Fatalf("%s: range at %d, have %d", name, g.Offset, len(blk))
			}
			blk = append(blk, g.Chunk...)
		}
		if len(blk) == cap(blk) {
			return blk
		}
	}
}

// mail is the scenario every privacy test runs: a sender stores an index
// block for a recipient and two data blocks (one in parts) and sends
// cover; the recipient lists its prefix and fetches all three.
type mail struct {
	sender, recipient *simNode
	address           block.ID // the recipient's address
	blocks            [][]byte
}

func runMail(t *testing.T, s *sim) *mail {
	m := &mail{sender: s.newClient(0), recipient: s.newClient(1)}
	m.address = testIdentity(t, 900).ID() // the recipient's user address, not its node ID
	rnd := s.rnd
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		return b
	}
	index := random(1300)
	for n := uint64(0); block.CommonPrefixLen(block.Sum(index), m.address) < simD; n++ {
		binary.BigEndian.PutUint64(index[len(index)-8:], n)
	}
	m.blocks = [][]byte{index, random(4096), random(65536)}
	for i, b := range m.blocks {
		s.put(fmt.Sprintf("put block %d", i), m.sender, b)
	}
	if s.onion {
		s.do("cover drop", m.sender, m.address, Drop{}, 0)
		s.do("path ping", m.sender, m.address, Ping{}, 2)
	}
	got := s.do("list", m.recipient, m.address, List{Target: m.address, Bits: simD, Limit: 1000}, 1)
	lr, ok := got[0].(ListReply)
	if !ok || len(lr.Entries) != 1 || lr.Entries[0].ID != block.Sum(index) {
		t.Fatalf("list: %+v, want the index block", got[0])
	}
	for i, b := range m.blocks {
		if fetched := s.get(fmt.Sprintf("get block %d", i), m.recipient, block.Sum(b)); !bytes.Equal(fetched, b) {
			t.Fatalf("block %d fetched differs (%d bytes, want %d)", i, len(fetched), len(b))
		}
	}
	return m
}
