package kademlia

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/record"
	"github.com/flowmail/flowmail/transport"
)

// Lookup finds the K nodes closest to target: it keeps Alpha requests in
// flight to the closest contacts not yet asked, and ends when the K
// closest contacts it has heard of that neither failed nor stalled have
// all answered (docs/PROTOCOL.md section 8). A request unanswered for the
// stall time stops counting against Alpha but may still answer. It
// returns the K closest contacts that answered, closest first.
func (d *DHT) Lookup(ctx context.Context, target block.ID) ([]transport.Contact, LookupStats, error) {
	return d.lookupWidth(ctx, target, d.cfg.K, 0)
}

// lookupWidth is Lookup for the width closest contacts (1 to K), or for
// the fewest of them that span groups IP groups (lookupParams.groups): it
// ends when those have answered and returns them.
func (d *DHT) lookupWidth(ctx context.Context, target block.ID, width, groups int) ([]transport.Contact, LookupStats, error) {
	m, err := d.runLookup(ctx, target, lookupOp{}, width, groups)
	st := m.finalStats()
	if err != nil {
		return nil, st, err
	}
	res := m.closest()
	if len(res) == 0 {
		return nil, st, fmt.Errorf("%w: lookup of %v (%d requests)", ErrNoContacts, target.Short(), st.Messages)
	}
	return res, st, nil
}

// lookupResult is what one request of a lookup brings back to the
// driver.
type lookupResult struct {
	to    block.ID
	msg   Message
	fault transport.Contact // whom to charge a failure, zero if none
	err   error
}

// storeLookupMessagesPerWidth bounds a store lookup's STOREs per
// contact of its width (docs/PROTOCOL.md 9.7).
const storeLookupMessagesPerWidth = 4

// lookupOp is what a lookup's requests ask: FIND_NODE (the zero value),
// FIND_BLOCK, a DELETE, which a holder answers OK (counted in
// lookupMachine.oks) and a node without the block answers NODES
// (docs/PROTOCOL.md 8), or a STORE, answered STORED with the contacts
// closer than the responder (counted in oks too).
//
// seeds are contacts to start from beside the routing table's closest,
// and alpha, when above zero, the requests in flight instead of the
// configured alpha: a delete of a block this node just got starts at
// the contacts that got it, all at once for a block held by K.
type lookupOp struct {
	wantBlock bool
	del       *Delete
	store     *Store
	seeds     []transport.Contact
	alpha     int
}

// message is the request the lookup sends for target.
func (op lookupOp) message(target block.ID) Message {
	switch {
	case op.store != nil:
		return *op.store
	case op.del != nil:
		return *op.del
	case op.wantBlock:
		return FindBlock{ID: target}
	}
	return FindNode{Target: target}
}

// runLookup drives a lookupMachine seeking the width closest (or those
// spanning groups IP groups): it carries the machine's requests (op) to
// the transport and their outcomes, the stall timer and cancellation back
// to it, and applies its charges to the routing table. Every request it
// started has returned when it returns.
func (d *DHT) runLookup(ctx context.Context, target block.ID, op lookupOp, width, groups int) (*lookupMachine, error) {
	wantBlock := op.wantBlock
	alpha := d.cfg.Alpha
	switch {
	case wantBlock:
		// A holder's answer carries the whole block: near the target the
		// alpha requests in flight all reach holders and bring it alpha
		// times (docs/PROTOCOL.md 8). One at a time; a silent contact
		// costs a stall time.
		alpha = BlockAlpha
	case op.alpha > 0:
		alpha = op.alpha
	}
	m := newLookupMachine(lookupParams{
		self: d.cfg.ID, target: target, wantBlock: wantBlock,
		k: d.cfg.K, alpha: alpha, width: width, groups: groups,
		table:      d.table.preferred,
		groupLimit: d.cfg.BucketIPLimit,
	})
	if op.store != nil {
		// Each request uploads the block: four times the width is room
		// for a table that missed a few closer nodes, and no more.
		m.p.maxMessages = storeLookupMessagesPerWidth * m.p.width
	}
	d.stats.lookups.Add(1)
	d.table.lookedUp(target, d.now())
	var seeds []transport.Contact
	if len(op.seeds) == 0 {
		seeds = d.table.closest(target, d.cfg.K, block.ID{})
	} else {
		// A delete lookup learns nobody from the holders (they answer
		// OK), so it is also seeded past them: a holder that is gone is
		// passed over to a contact it knows, not waited for.
		seeds = mergeContacts(op.seeds, d.table.closest(target, 2*d.cfg.K, block.ID{}))
	}
	if len(seeds) == 0 {
		return m, fmt.Errorf("%w: routing table is empty", ErrNoContacts)
	}
	// Encoded once: a store lookup's requests share one copy of the block.
	msg := op.message(target)
	req, err := Encode(msg)
	if err != nil {
		return m, err
	}
	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan lookupResult, d.cfg.Alpha)
	timer := d.cfg.Clock.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()

	step := func(ev lookupEvent) lookupReady {
		ev.now, ev.stall = d.now(), d.stallTimeout()
		stalledBefore := m.stats.Stalled
		rd := m.step(ev)
		d.stats.lookupStalls.Add(uint64(m.stats.Stalled - stalledBefore))
		for _, c := range rd.stalled {
			d.table.stalled(c)
		}
		for _, c := range rd.charge {
			d.table.failed(c)
		}
		for _, c := range rd.liars {
			d.log.Warn("kademlia: peer named a contact at another node's address", "peer", c.ID.Short())
			d.table.remove(c.ID)
		}
		for _, c := range rd.send {
			go d.lookupQuery(qctx, c, msg, req, results)
		}
		return rd
	}
	rd := step(lookupEvent{kind: evStart, contacts: seeds})
	for !rd.done {
		var timerC <-chan time.Time
		if timer.Stop(); !rd.timer.IsZero() {
			timer.Reset(rd.timer.Sub(d.now()))
			timerC = timer.C
		}
		select {
		case r := <-results:
			rd = step(d.lookupEvent(m, op, r))
		case <-timerC:
			rd = step(lookupEvent{kind: evTick})
		case <-ctx.Done():
		}
		if ctx.Err() != nil && !rd.done {
			rd = step(lookupEvent{kind: evCancel})
		}
	}
	// Requests to contacts that no longer matter are abandoned, not
	// counted as failures (exchange checks the context); those that
	// stalled were charged when they stalled.
	cancel()
	for m.inflight > 0 {
		step(d.lookupEvent(m, op, <-results))
	}
	d.stats.lookupMessages.Add(uint64(m.stats.Messages))
	return m, ctx.Err()
}

// lookupEvent turns the outcome of a request into the machine's input: a
// block that does not hash to the target is a lie, and the liar leaves
// the routing table.
func (d *DHT) lookupEvent(m *lookupMachine, op lookupOp, r lookupResult) lookupEvent {
	ev := lookupEvent{kind: evFailed, from: r.to, fault: r.fault}
	var refused *Error
	if op.del != nil && errors.As(r.err, &refused) && refused.Code == CodeForbidden {
		// A DELETE refused: the node holds the block's tombstone, or a
		// block it may not delete. It answered, naming nobody.
		ev.kind = evNodes
		return ev
	}
	if r.err != nil {
		ev.wrongPeer = errors.Is(r.err, transport.ErrWrongPeer)
		d.log.Debug("kademlia: lookup request failed", "target", m.p.target.Short(), "peer", r.to.Short(), "err", r.err)
		return ev
	}
	switch msg := r.msg.(type) {
	case Nodes:
		ev.kind, ev.contacts = evNodes, msg.Contacts
	case OK:
		// A holder deleted the block (a delete lookup): it answered,
		// naming nobody.
		if op.del != nil {
			m.oks++
			ev.kind = evNodes
		}
	case Stored:
		// A node took the block (a store lookup) and names the contacts
		// it knows closer to it.
		if op.store != nil {
			m.oks++
			ev.kind, ev.contacts = evNodes, msg.Contacts
		}
	case BlockReply:
		if !m.p.wantBlock {
			break
		}
		if err := verifyBlock(m.p.target, msg.Block); err != nil {
			d.log.Warn("kademlia: peer returned a block that does not match", "peer", r.to.Short(), "id", m.p.target.Short(), "err", err)
			d.table.remove(r.to)
			break
		}
		ev.kind, ev.block, ev.lifetime = evBlock, msg.Block, msg.Lifetime
	}
	return ev
}

// lookupQuery sends one request of a lookup (FIND_NODE, FIND_BLOCK,
// DELETE or STORE: lookupOp), m encoded as req, and reports its outcome,
// with the round trip of an answer for the stall time (not a STORE's,
// which carries a block and would stretch it).
func (d *DHT) lookupQuery(ctx context.Context, c transport.Contact, m Message, req []byte, out chan<- lookupResult) {
	start := d.now()
	resp, _, fault, err := d.exchangeEncoded(ctx, c, m, req)
	if _, isStore := m.(Store); err == nil && !isStore {
		d.rtt.add(d.now().Sub(start))
	}
	out <- lookupResult{to: c.ID, msg: resp, fault: fault, err: err}
}

// verifyBlock checks that b is the block named id and that it is valid,
// or a valid record whose slot is id (records are found at their slot; a
// FIND_BLOCK lookup takes the first version, DHT.Records asks the K
// closest).
func verifyBlock(id block.ID, b []byte) error {
	if h, _, err := block.ParseHeader(b); err == nil && h.Type == block.TypeRecord {
		r, err := record.Parse(b)
		if err == nil && r.Slot() != id {
			err = fmt.Errorf("record of slot %v, not %v", r.Slot().Short(), id.Short())
		}
		return err
	}
	if got := block.Sum(b); got != id {
		return fmt.Errorf("block hashes to %v, not %v", got.Short(), id.Short())
	}
	_, err := identity.Check(b)
	return err
}

// mergeContacts returns first, then the contacts of more that first does
// not name.
func mergeContacts(first, more []transport.Contact) []transport.Contact {
	out := slices.Clip(slices.Clone(first))
	for _, c := range more {
		if !slices.ContainsFunc(first, func(x transport.Contact) bool { return x.ID == c.ID }) {
			out = append(out, c)
		}
	}
	return out
}
