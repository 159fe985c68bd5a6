package kademlia

import (
	"net/netip"
	"slices"
	"time"

	"github.com/flowmail/flowmail/block"
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

// The lookup's decisions live in lookupMachine, a value that does no I/O
// and reads no clock (as etcd's raft does it): the driver (lookuprun.go)
// feeds it events, each with the current time, and carries out the
// lookupReady it returns. Transcript tests (testdata/lookup) feed it
// scripts of replies.

type candState uint8

const (
	fresh    candState = iota
	waiting            // asked; counts against Alpha
	stalled            // asked, unanswered for the stall time; may still answer
	answered           // answered NODES, or a verified BLOCK
	failed             // no answer, an error, or a lie
)

type candidate struct {
	transport.Contact // Addr: the address asked
	state             candState
	depth             int
	// failing: the routing table says the last request to it failed.
	failing bool
	// alt is a second address heard for the ID, tried once (altUsed)
	// if Addr cannot be reached (unreachable): the first address heard
	// may be a liar's.
	alt         netip.AddrPort
	altUsed     bool
	unreachable bool
	// introducer is the first peer whose answer named it (zero: the
	// routing table), vouched how many distinct answers named it.
	introducer block.ID
	vouched    int
	dropped    bool // unasked, for only a liar named it

	// When the request in flight stalls (zero: never), and whether the
	// stall was charged to the table as a failure.
	stallAt time.Time
	charged bool
}

// lookupParams fix one lookup.
type lookupParams struct {
	self      block.ID // never a candidate
	target    block.ID
	wantBlock bool // FIND_BLOCK: a verified block ends the lookup
	k, alpha  int
	// width is how many of the closest the lookup seeks (1 to k; 0: k):
	// it asks, waits for and returns the width closest. Its bounds on
	// candidates and messages stay those of k.
	width int
	// groups, when above 0, narrows the width to the fewest closest
	// contacts that span that many IP groups (each contact a group of
	// its own when groupLimit is off): a data block's put seeks the R
	// groups its placement takes one holder from, not 2R contacts.
	groups int
	// table tells what the routing table knows of a contact heard of:
	// the contact to ask for its ID (the table's own entry, whose address
	// a handshake verified, else c) and whether the last request to that
	// contact failed or stalled. Nil: the table knows nobody.
	table func(c transport.Contact) (ask transport.Contact, failing bool)
	// groupLimit bounds the contacts of one IP group (/24, /48) among
	// the K closest a lookup asks, waits for and returns, so one host's
	// Sybils ground next to a target take few of its places (<= 0: no
	// bound).
	groupLimit int
	// maxMessages, when above 0, bounds the requests below the
	// maxLookupMessagesPerK·k of other lookups: a store lookup's
	// requests carry the block, and a liar naming made-up closer
	// contacts must not make a put upload it two hundred times.
	maxMessages int
}

type lookupEventKind uint8

const (
	// evStart begins the lookup with contacts, the table's closest
	// (checked already: they are not checked again).
	evStart lookupEventKind = iota
	// evNodes: from answered NODES with contacts.
	evNodes
	// evBlock: from answered a BLOCK that the driver verified.
	evBlock
	// evFailed: the request to from failed (no answer, an error, a reply
	// of the wrong type, a lie); fault is the contact to charge a
	// failure (zero: nobody, as for an overloaded peer or a request the
	// lookup abandoned). A fault with an address says from could not be
	// reached there; one without names the peer itself, which answered
	// wrongly. wrongPeer says another node answered at the address: the
	// ID and address were paired by whoever named them.
	evFailed
	// evTick: the timer of lookupReady.timer fired.
	evTick
	// evCancel: the caller gave up; the lookup ends.
	evCancel
)

// lookupEvent is one input of the machine.
type lookupEvent struct {
	kind lookupEventKind
	now  time.Time
	// stall is the stall time for the requests this step sends (<= 0:
	// they never stall).
	stall     time.Duration
	from      block.ID
	contacts  []transport.Contact // evStart, evNodes
	block     []byte              // evBlock
	lifetime  uint32              // evBlock
	fault     transport.Contact   // evFailed
	wrongPeer bool                // evFailed
}

// lookupReady is what the driver must do after a step.
type lookupReady struct {
	// send: start a request to each (FIND_NODE, or FIND_BLOCK).
	send []transport.Contact
	// stalled: charge each to the routing table as stalled.
	stalled []transport.Contact
	// charge: charge each to the routing table as failed.
	charge []transport.Contact
	// liars: peers that named a contact at another node's address;
	// the driver drops them from the routing table.
	liars []transport.Contact
	// timer: step evTick at this time (zero: no timer).
	timer time.Time
	// done: the lookup has its result; the driver abandons the requests
	// in flight (and steps their outcomes, which only charge failures).
	done bool
}

// lookupMachine is the state of one iterative lookup. It is not safe for
// concurrent use: one driver steps it.
type lookupMachine struct {
	p     lookupParams
	cands []*candidate // by distance to target, closest first
	known map[block.ID]*candidate
	stats LookupStats

	active    int // waiting requests: they count against alpha
	inflight  int // requests sent and not yet ended
	finished  bool
	cancelled bool

	found    []byte // a verified block (FIND_BLOCK only)
	lifetime uint32
	// oks counts the OK answers of a delete lookup (lookupOp): the
	// driver's count of the holders that deleted the block.
	oks int

	// What became of the contacts each peer named (see judge).
	named map[block.ID]*namedRecord
}

func (r *namedRecord) isLiar() bool { return r != nil && r.liar }

// namedRecord counts the outcomes of the requests to contacts one peer
// named first.
type namedRecord struct {
	answered, unreachable int
	liar                  bool
}

func newLookupMachine(p lookupParams) *lookupMachine {
	if p.width <= 0 || p.width > p.k {
		p.width = p.k
	}
	if p.table == nil {
		p.table = func(c transport.Contact) (transport.Contact, bool) { return c, false }
	}
	return &lookupMachine{p: p, known: make(map[block.ID]*candidate), named: make(map[block.ID]*namedRecord)}
}

// step applies one event and says what to do next.
func (m *lookupMachine) step(ev lookupEvent) lookupReady {
	var rd lookupReady
	switch ev.kind {
	case evStart:
		for _, c := range ev.contacts {
			m.add(c, 0, nil)
		}
	case evNodes, evBlock, evFailed:
		m.ended(ev, &rd)
	case evTick:
		m.markStalled(ev.now, &rd)
	case evCancel:
		m.finished, m.cancelled = true, true
	}
	if !m.finished && (m.found != nil || m.terminated()) {
		m.finished = true
	}
	if !m.finished {
		m.sendMore(ev, &rd)
		if m.inflight == 0 {
			m.finished = true // nothing to ask: the message budget ran out
		}
	}
	rd.done = m.finished
	if !rd.done {
		rd.timer = m.nextStall()
	}
	return rd
}

// sendMore starts requests to the closest fresh contacts while fewer than
// alpha are active. A contact the table knows as failing is asked as
// stalled from the start: it holds no slot and no termination, but is
// still used if it answers (a node back from a restart).
func (m *lookupMachine) sendMore(ev lookupEvent, rd *lookupReady) {
	maxMessages := maxLookupMessagesPerK * m.p.k
	if m.p.maxMessages > 0 {
		maxMessages = min(maxMessages, m.p.maxMessages)
	}
	limit := m.p.alpha
	if !m.p.wantBlock && m.closestAnswered() {
		// Converged: the rest of the closest are asked at once
		// (Kademlia's final round), not alpha at a time.
		limit = max(limit, m.span())
	}
	for m.active < limit && m.stats.Messages < maxMessages {
		c := m.next()
		if c == nil {
			return
		}
		m.stats.Messages++
		m.inflight++
		switch {
		case c.failing && ev.stall > 0:
			c.state = stalled
			m.stats.Stalled++
		case ev.stall > 0:
			c.state, c.stallAt = waiting, ev.now.Add(ev.stall)
			m.active++
		default:
			c.state = waiting
			m.active++
		}
		rd.send = append(rd.send, c.Contact)
	}
}

// closestAnswered reports whether the closest candidate in play (neither
// failed nor stalled, within the IP-group limit) has answered: no answer
// has named anyone closer, so the lookup has converged.
func (m *lookupMachine) closestAnswered() bool {
	g := m.groupCounter()
	for _, c := range m.cands {
		if c.state == failed || c.state == stalled || !g.fits(c) {
			continue
		}
		return c.state == answered
	}
	return false
}

// nextStall returns when the next waiting request stalls, zero if none
// will.
func (m *lookupMachine) nextStall() time.Time {
	var at time.Time
	for _, c := range m.cands {
		if c.state == waiting && !c.stallAt.IsZero() && (at.IsZero() || c.stallAt.Before(at)) {
			at = c.stallAt
		}
	}
	return at
}

// markStalled moves the waiting requests whose stall time has come at now
// to stalled. Each stalled peer is charged a failure at once, so this
// node's NODES answers stop naming it while it is silent (an answer
// clears the charge): after a mass failure the dead are then noticed
// within the stall time, by every lookup that meets them, instead of at
// the dial timeout or never.
func (m *lookupMachine) markStalled(now time.Time, rd *lookupReady) {
	if m.finished {
		return
	}
	for _, c := range m.cands {
		if c.state == waiting && !c.stallAt.IsZero() && !now.Before(c.stallAt) {
			c.state, c.charged = stalled, true
			m.active--
			m.stats.Stalled++
			rd.stalled = append(rd.stalled, c.Contact)
		}
	}
}

// ended takes the outcome of the request to ev.from.
func (m *lookupMachine) ended(ev lookupEvent, rd *lookupReady) {
	c := m.known[ev.from]
	if c == nil || (c.state != waiting && c.state != stalled) {
		return // not a request of this lookup: the driver's mistake
	}
	m.inflight--
	wasWaiting := c.state == waiting
	// A stalled peer was charged when it stalled: not twice.
	if !ev.fault.ID.IsZero() && (!c.charged || ev.fault.ID != c.ID) {
		rd.charge = append(rd.charge, ev.fault)
	}
	if m.finished {
		// Abandoned: only failures count, those of stalled requests
		// that went on failing, unless the caller cancelled.
		if ev.kind == evFailed && c.state == stalled && !m.cancelled {
			c.state = failed
			m.stats.Failed++
		}
		return
	}
	if wasWaiting {
		m.active--
	}
	m.judge(c, ev, rd)
	switch ev.kind {
	case evNodes:
		c.state = answered
		for i, n := range ev.contacts {
			// An ID named twice in one answer counts once.
			if !slices.ContainsFunc(ev.contacts[:i], func(x transport.Contact) bool { return x.ID == n.ID }) {
				m.add(n, c.depth+1, c)
			}
		}
	case evBlock:
		if m.p.wantBlock {
			c.state = answered
			m.found, m.lifetime = ev.block, ev.lifetime
			return
		}
		c.state = failed
		m.stats.Failed++
	default:
		c.state = failed
		m.stats.Failed++
		c.unreachable = ev.fault.ID == c.ID && ev.fault.Addr.IsValid()
		if c.unreachable && c.alt.IsValid() {
			m.retryAt(c, c.alt)
		}
	}
}

// Bounds of judge: how many contacts named by one peer may be
// unreachable, and outnumber those that answered, before the lookup
// stops trusting that peer's answer.
const maxUnreachableNamed = 3

// judge records the outcome of the request to c against the peer that
// named c first, and stops trusting a peer that lies: one whose contact
// turned out to be another node (a verified contact never is: whoever
// paired that ID and address made it up), or most of whose contacts
// cannot be reached (maxUnreachableNamed or more, and more than
// answered; a mass failure leaves most of an honest peer's contacts
// alive). The lookup drops what only the liar named and counts the liar
// as failed; one caught naming another node's address is also handed to
// the driver, which drops it from the routing table.
func (m *lookupMachine) judge(c *candidate, ev lookupEvent, rd *lookupReady) {
	if c.introducer.IsZero() {
		return
	}
	r := m.named[c.introducer]
	if r == nil {
		r = &namedRecord{}
		m.named[c.introducer] = r
	}
	switch {
	case r.liar:
		return
	case ev.kind == evNodes || ev.kind == evBlock:
		r.answered++
		return
	case ev.fault.ID != c.ID || !ev.fault.Addr.IsValid():
		return // reached, and it answered wrongly: its own fault
	}
	r.unreachable++
	if !ev.wrongPeer && (r.unreachable < maxUnreachableNamed || r.unreachable <= r.answered) {
		return
	}
	r.liar = true
	liar := m.known[c.introducer]
	if liar != nil && liar.state == answered {
		liar.state = failed
		m.stats.Failed++
	}
	if liar != nil && ev.wrongPeer {
		rd.liars = append(rd.liars, liar.Contact)
	}
	for _, x := range m.cands {
		if x.state == fresh && x.introducer == c.introducer && x.vouched == 1 {
			x.state, x.dropped = failed, true
		}
	}
}

// retryAt makes c, which could not be reached at its address, fresh
// again at addr, another address heard for it. Each candidate gets one
// retry.
func (m *lookupMachine) retryAt(c *candidate, addr netip.AddrPort) {
	c.Addr, c.alt, c.altUsed, c.unreachable = addr, netip.AddrPort{}, true, false
	c.state, c.stallAt, c.charged = fresh, time.Time{}, false
	_, c.failing = m.p.table(c.Contact)
}

// add inserts a contact heard of at depth from the answer of from (nil:
// the routing table's), unless it is known already, is this node, or
// cannot be a peer's address (CheckPeerAddr). A contact the routing
// table holds is asked at the table's address; another address heard
// for it is kept as its alternative, tried if the first cannot be
// reached.
func (m *lookupMachine) add(c transport.Contact, depth int, from *candidate) {
	via, introducer := c.Addr, block.ID{}
	if from != nil {
		via, introducer = from.Addr, from.ID
	}
	if c.ID == m.p.self || c.ID.IsZero() || !usableAddr(c.Addr, via) {
		return
	}
	if known := m.known[c.ID]; known != nil {
		known.depth = min(known.depth, depth)
		known.vouched++
		if known.dropped && (from == nil || !m.named[from.ID].isLiar()) {
			// Another peer vouches for what only a liar had named.
			known.state, known.dropped = fresh, false
		}
		switch {
		case known.altUsed || known.alt.IsValid() || addrMatches(known.Addr, c.Addr):
		case known.unreachable:
			m.retryAt(known, c.Addr)
		default:
			known.alt = c.Addr
		}
		return
	}
	pos, _ := slices.BinarySearchFunc(m.cands, c.ID, func(x *candidate, id block.ID) int {
		return CompareDistance(x.ID, id, m.p.target)
	})
	// The bound counts the candidates still in play: failed ones (a
	// liar's inventions among them) must not push live ones out.
	limit := maxLookupCandidatesPerK * m.p.k
	if pos >= limit { // else fewer than limit can be in play before it
		inPlay := 0
		for _, x := range m.cands[:pos] {
			if x.state != failed {
				inPlay++
			}
		}
		if inPlay >= limit {
			return
		}
	}
	ask, failing := m.p.table(c)
	cand := &candidate{Contact: ask, depth: depth, failing: failing, introducer: introducer, vouched: 1}
	if !addrMatches(ask.Addr, c.Addr) {
		cand.alt = c.Addr
	}
	m.known[c.ID] = cand
	m.cands = slices.Insert(m.cands, pos, cand)
	if len(m.cands) <= limit {
		return // within the bound however many failed
	}
	// Past the bound, the farthest fresh candidates go; they may come
	// back if named again.
	n := 0
	kept := m.cands[:0]
	for _, x := range m.cands {
		if x.state != failed {
			n++
		}
		if n > limit && x.state == fresh {
			delete(m.known, x.ID)
			continue
		}
		kept = append(kept, x)
	}
	m.cands = kept
}

// span is how many of the closest contacts that have neither failed nor
// stalled the lookup now seeks: the width, or, with lookupParams.groups,
// the fewest of them that span that many IP groups (at most the width;
// the width while fewer are known).
func (m *lookupMachine) span() int {
	switch {
	case m.p.groups <= 0:
		return m.p.width
	case m.p.groupLimit <= 0:
		// Every contact a group of its own (fewer known: the walks over
		// the closest end by themselves).
		return min(m.p.groups, m.p.width)
	}
	var seen [K]netip.Prefix
	n, spanned := 0, 0
	g := m.groupCounter()
	for _, c := range m.cands {
		if c.state == failed || c.state == stalled || !g.fits(c) {
			continue
		}
		n++
		if grp := ipGroup(c.Addr.Addr()); !slices.Contains(seen[:spanned], grp) {
			seen[spanned] = grp
			spanned++
		}
		if spanned == m.p.groups || n == m.p.width {
			return n
		}
	}
	return m.p.width
}

// next returns the closest fresh contact among the span closest that
// have neither failed nor stalled, or nil when all of those were asked.
func (m *lookupMachine) next() *candidate {
	n, width := 0, m.span()
	g := m.groupCounter()
	for _, c := range m.cands {
		switch {
		case c.state == failed, c.state == stalled, !g.fits(c):
			continue
		case c.state == fresh:
			return c
		}
		if n++; n == width {
			break
		}
	}
	return nil
}

// groupCounter counts the candidates of each IP group a walk over the
// closest has taken, for lookupParams.groupLimit. A walk takes at most K
// candidates, so at most K groups: no map needed.
type groupCounter struct {
	limit  int
	n      int
	groups [K]netip.Prefix
	counts [K]int
}

func (m *lookupMachine) groupCounter() *groupCounter { return &groupCounter{limit: m.p.groupLimit} }

// fits reports whether c's group has room, and takes its place if so.
func (g *groupCounter) fits(c *candidate) bool {
	if g.limit <= 0 {
		return true
	}
	grp := ipGroup(c.Addr.Addr())
	for i := range g.n {
		if g.groups[i] == grp {
			if g.counts[i] >= g.limit {
				return false
			}
			g.counts[i]++
			return true
		}
	}
	if g.n == len(g.groups) {
		return true // past K groups the walk is over anyway
	}
	g.groups[g.n], g.counts[g.n] = grp, 1
	g.n++
	return true
}

// terminated reports the termination rule (docs/PROTOCOL.md section 8):
// the width (K, or 2R for a data block's put and delete) closest
// contacts heard of that neither failed nor stalled have all answered,
// and either that many answered or no stalled request is left to wait
// for. A stalled contact is passed over like a failed one,
// so a dead contact among the closest costs the stall time, not the
// timeout; when fewer than K answered, the stalled requests are all the
// lookup has left, and it waits for them.
func (m *lookupMachine) terminated() bool {
	n, stalledLeft, width := 0, false, m.span()
	g := m.groupCounter()
	for _, c := range m.cands {
		switch {
		case c.state == failed:
			continue
		case c.state == stalled:
			stalledLeft = true
			continue
		case !g.fits(c):
			continue
		case c.state == fresh, c.state == waiting:
			return false
		}
		if n++; n == width {
			return true
		}
	}
	return !stalledLeft
}

// closest returns the span closest contacts that answered, closest
// first, at most groupLimit of one IP group.
func (m *lookupMachine) closest() []transport.Contact {
	return m.pick(m.span(), func(c *candidate) bool { return c.state == answered })
}

// nearest returns the n closest contacts heard of that have not failed,
// asked or not, closest first, at most groupLimit of one IP group.
func (m *lookupMachine) nearest(n int) []transport.Contact {
	return m.pick(n, func(c *candidate) bool { return c.state != failed })
}

// pick returns the n closest candidates that keep takes, at most
// groupLimit of one IP group.
func (m *lookupMachine) pick(n int, keep func(*candidate) bool) []transport.Contact {
	var out []transport.Contact
	g := m.groupCounter()
	for _, c := range m.cands {
		if keep(c) && g.fits(c) {
			out = append(out, c.Contact)
			if len(out) == n {
				break
			}
		}
	}
	return out
}

// finalStats returns the stats with Hops and Rounds filled in.
func (m *lookupMachine) finalStats() LookupStats {
	st := m.stats
	first := true
	for _, c := range m.cands {
		if c.state != answered {
			continue
		}
		if first {
			st.Hops, first = c.depth+1, false
		}
		st.Rounds = max(st.Rounds, c.depth+1)
	}
	return st
}
