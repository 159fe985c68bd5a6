package kademlia

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/transport"
)

// LookupStats describe one lookup.
//
// A contact from the own routing table has depth 0; one first heard of in
// the answer of a contact of depth d has depth d+1 (the least such d when
// several answers named it). A contact's hop count is its depth plus one:
// the requests in the chain that led to it, its own answer included.
type LookupStats struct {
	// Hops is the hop count of the closest contact that answered.
	Hops int
	// Rounds is the largest hop count of any contact that answered: the
	// longest chain of requests the lookup waited on.
	Rounds int
	// Messages is the number of requests sent.
	Messages int
	// Failed counts requests that got no answer, an error, or a lie.
	Failed int
	// Stalled counts requests that went unanswered for the stall time
	// (Config.StallTimeout), whatever became of them, and those sent as
	// stalled from the start to contacts the routing table knows as
	// failing.
	Stalled int
}

// Bounds that keep one lookup finite whatever its peers answer: a liar
// can make up endless fresh IDs, each of which costs a request.
const (
	maxLookupCandidatesPerK = 8
	maxLookupMessagesPerK   = 10
)

type candState uint8

const (
	fresh    candState = iota
	waiting            // asked; counts against Alpha
	stalled            // asked, unanswered for the stall time; may still answer
	answered           // answered NODES, or a verified BLOCK
	failed             // no answer, an error, or a lie
)

type candidate struct {
	transport.Contact
	state candState
	depth int
	// failing: the routing table says the last request to it failed.
	failing bool

	// When the request in flight stalls (zero: never), and whether the
	// stall was charged to the table as a failure.
	stallAt time.Time
	charged bool
}

// lookup is the state of one iterative lookup. Only run's goroutine
// touches it; the requests it starts report back through a channel.
type lookup struct {
	d         *DHT
	target    block.ID
	wantBlock bool // FIND_BLOCK instead of FIND_NODE

	cands []*candidate // by distance to target, closest first
	known map[block.ID]*candidate
	stats LookupStats

	found    []byte // a verified block (FIND_BLOCK only)
	lifetime uint32
}

type lookupReply struct {
	c     *candidate
	msg   Message
	blame block.ID // the peer to charge a failure, zero if none
	err   error
}

// Lookup finds the K nodes closest to target: it keeps Alpha requests in
// flight to the closest contacts not yet asked, and ends when the K
// closest contacts it has heard of that neither failed nor stalled have
// all answered (see done). A request unanswered for the stall time stops
// counting against Alpha but may still answer. It returns the K closest
// contacts that answered, closest first.
func (d *DHT) Lookup(ctx context.Context, target block.ID) ([]transport.Contact, LookupStats, error) {
	l := d.newLookup(target, false)
	if err := l.run(ctx); err != nil {
		return nil, l.stats, err
	}
	res := l.closest()
	if len(res) == 0 {
		return nil, l.stats, fmt.Errorf("%w: lookup of %v (%d requests)", ErrNoContacts, target.Short(), l.stats.Messages)
	}
	return res, l.stats, nil
}

func (d *DHT) newLookup(target block.ID, wantBlock bool) *lookup {
	return &lookup{d: d, target: target, wantBlock: wantBlock, known: make(map[block.ID]*candidate)}
}

// run drives the lookup until it ends. Every request it started has
// returned when run returns.
func (l *lookup) run(ctx context.Context) error {
	d := l.d
	d.stats.lookups.Add(1)
	d.table.lookedUp(l.target, d.now())
	for _, c := range d.table.closest(l.target, d.cfg.K, block.ID{}) {
		l.add(c, 0)
	}
	if len(l.cands) == 0 {
		return fmt.Errorf("%w: routing table is empty", ErrNoContacts)
	}
	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	replies := make(chan lookupReply, d.cfg.Alpha)
	stallTimer := d.cfg.Clock.NewTimer(time.Hour)
	stallTimer.Stop()
	defer stallTimer.Stop()
	active, inflight := 0, 0 // active: the waiting requests, which count against Alpha
	maxMessages := maxLookupMessagesPerK * d.cfg.K
	for l.found == nil && !l.done() {
		for active < d.cfg.Alpha && l.stats.Messages < maxMessages {
			c := l.next()
			if c == nil {
				break
			}
			l.send(qctx, c, replies)
			inflight++
			if c.state == waiting {
				active++
			}
		}
		if inflight == 0 {
			break // the message budget ran out
		}
		var stallC <-chan time.Time
		if at := l.nextStall(); at.IsZero() {
			stallTimer.Stop()
		} else {
			stallTimer.Reset(at.Sub(d.now()))
			stallC = stallTimer.C
		}
		select {
		case r := <-replies:
			inflight--
			if r.c.state == waiting {
				active--
			}
			l.handle(r)
		case <-stallC:
			active -= l.markStalled(d.now())
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	// Requests to contacts that no longer matter are abandoned, not
	// counted as failures (exchange checks the context); those that
	// stalled were charged when they stalled.
	cancel()
	for ; inflight > 0; inflight-- {
		r := <-replies
		l.charge(r)
		if r.c.state == stalled && r.err != nil && ctx.Err() == nil {
			r.c.state = failed
			l.stats.Failed++
		}
	}
	d.stats.lookupMessages.Add(uint64(l.stats.Messages))
	l.finishStats()
	return ctx.Err()
}

// send starts the request to c. A contact the table knows as failing is
// asked as stalled from the start: it holds no slot and no termination,
// but is still used if it answers (a node back from a restart).
func (l *lookup) send(ctx context.Context, c *candidate, out chan<- lookupReply) {
	l.stats.Messages++
	switch stall := l.d.stallTimeout(); {
	case c.failing && stall > 0:
		c.state = stalled
		l.stats.Stalled++
		l.d.stats.lookupStalls.Add(1)
	case stall > 0:
		c.state = waiting
		c.stallAt = l.d.now().Add(stall)
	default:
		c.state = waiting
	}
	go l.query(ctx, c, out)
}

// nextStall returns when the next waiting request stalls, zero if none
// will.
func (l *lookup) nextStall() time.Time {
	var at time.Time
	for _, c := range l.cands {
		if c.state == waiting && !c.stallAt.IsZero() && (at.IsZero() || c.stallAt.Before(at)) {
			at = c.stallAt
		}
	}
	return at
}

// markStalled moves the waiting requests whose stall time has come at now
// to stalled and returns how many it moved. Each stalled peer is charged
// a failure at once, so this node's NODES answers stop naming it while
// it is silent (an answer clears the charge): after a mass failure the
// dead are then noticed within the stall time, by every lookup that
// meets them, instead of at the dial timeout or never.
func (l *lookup) markStalled(now time.Time) int {
	n := 0
	for _, c := range l.cands {
		if c.state == waiting && !c.stallAt.IsZero() && !now.Before(c.stallAt) {
			c.state = stalled
			l.stats.Stalled++
			l.d.stats.lookupStalls.Add(1)
			l.d.table.stalled(c.ID)
			c.charged = true
			n++
		}
	}
	return n
}

func (l *lookup) query(ctx context.Context, c *candidate, out chan<- lookupReply) {
	var m Message = FindNode{Target: l.target}
	if l.wantBlock {
		m = FindBlock{ID: l.target}
	}
	start := l.d.now()
	resp, _, blame, err := l.d.exchange(ctx, c.Contact, m)
	if err == nil {
		l.d.rtt.add(l.d.now().Sub(start))
	}
	out <- lookupReply{c: c, msg: resp, blame: blame, err: err}
}

// add inserts a contact heard of at depth, unless it is known already, is
// this node, or cannot be dialled.
func (l *lookup) add(c transport.Contact, depth int) {
	if c.ID == l.d.cfg.ID || c.ID.IsZero() || !usableAddr(c.Addr) {
		return
	}
	if known := l.known[c.ID]; known != nil {
		known.depth = min(known.depth, depth)
		return
	}
	pos, _ := slices.BinarySearchFunc(l.cands, c.ID, func(x *candidate, id block.ID) int {
		return compareDistance(x.ID, id, l.target)
	})
	limit := maxLookupCandidatesPerK * l.d.cfg.K
	if pos >= limit {
		return
	}
	cand := &candidate{Contact: c, depth: depth, failing: l.d.table.failing(c.ID)}
	l.known[c.ID] = cand
	l.cands = slices.Insert(l.cands, pos, cand)
	if last := l.cands[len(l.cands)-1]; len(l.cands) > limit && last.state != waiting && last.state != stalled {
		l.cands = l.cands[:len(l.cands)-1]
	}
}

// next returns the closest fresh contact among the K closest that have
// neither failed nor stalled, or nil when all of those were asked.
func (l *lookup) next() *candidate {
	n := 0
	for _, c := range l.cands {
		switch c.state {
		case failed, stalled:
			continue
		case fresh:
			return c
		}
		if n++; n == l.d.cfg.K {
			break
		}
	}
	return nil
}

// done reports the termination rule: the K closest contacts heard of that
// neither failed nor stalled have all answered, and either K contacts
// answered or no stalled request is left to wait for. A stalled contact
// is passed over like a failed one, so a dead contact among the closest
// costs the stall time, not the timeout; when fewer than K answered, the
// stalled requests are all the lookup has left, and it waits for them.
func (l *lookup) done() bool {
	n, stalledLeft := 0, false
	for _, c := range l.cands {
		switch c.state {
		case failed:
			continue
		case stalled:
			stalledLeft = true
			continue
		case fresh, waiting:
			return false
		}
		if n++; n == l.d.cfg.K {
			return true
		}
	}
	return !stalledLeft
}

// charge passes a failure on to the routing table, unless it is that of
// a stalled peer, charged already.
func (l *lookup) charge(r lookupReply) {
	if !r.blame.IsZero() && (!r.c.charged || r.blame != r.c.ID) {
		l.d.table.failed(r.blame)
	}
}

func (l *lookup) handle(r lookupReply) {
	l.charge(r)
	c := r.c
	if r.err != nil {
		c.state = failed
		l.stats.Failed++
		l.d.log.Debug("kademlia: lookup request failed", "target", l.target.Short(), "peer", c.ID.Short(), "err", r.err)
		return
	}
	switch m := r.msg.(type) {
	case Nodes:
		c.state = answered
		for _, n := range m.Contacts {
			l.add(n, c.depth+1)
		}
		return
	case BlockReply:
		if l.wantBlock {
			if err := verifyBlock(l.target, m.Block); err != nil {
				// A liar: its bytes are dropped, and so is it.
				l.d.log.Warn("kademlia: peer returned a block that does not match", "peer", c.ID.Short(), "id", l.target.Short(), "err", err)
				l.d.table.remove(c.ID)
				break
			}
			c.state = answered
			l.found = m.Block
			l.lifetime = m.Lifetime
			return
		}
	}
	c.state = failed
	l.stats.Failed++
}

// verifyBlock checks that b is the block named id and that it is valid.
func verifyBlock(id block.ID, b []byte) error {
	if got := block.Sum(b); got != id {
		return fmt.Errorf("block hashes to %v, not %v", got.Short(), id.Short())
	}
	_, err := identity.Check(b)
	return err
}

// closest returns the K closest contacts that answered, closest first.
func (l *lookup) closest() []transport.Contact {
	var out []transport.Contact
	for _, c := range l.cands {
		if c.state == answered {
			out = append(out, c.Contact)
			if len(out) == l.d.cfg.K {
				break
			}
		}
	}
	return out
}

func (l *lookup) finishStats() {
	first := true
	for _, c := range l.cands {
		if c.state != answered {
			continue
		}
		if first {
			l.stats.Hops, first = c.depth+1, false
		}
		l.stats.Rounds = max(l.stats.Rounds, c.depth+1)
	}
}
