package node

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/atomicfile"
	"github.com/flowmail/flowmail/kademlia"
	"github.com/flowmail/flowmail/onion"
	"github.com/flowmail/flowmail/record"
	"github.com/flowmail/flowmail/transport"
)

// Defaults of OnionOptions.
const (
	// DefaultOnionWait is how long a request waits for its answers
	// beyond the delays drawn for it, before it tries another path.
	DefaultOnionWait = 30 * time.Second
	// OnionAttempts is how many paths one operation tries.
	OnionAttempts = 3
	// OnionPoolSize bounds the relays whose pubkey blocks a client
	// fetches to build paths from.
	OnionPoolSize = 48
	// OnionPoolLookups is how many lookups of random IDs, run at once,
	// make one round that adds relays to the pool beside the routing
	// table's contacts; up to OnionPoolRounds rounds run while fewer
	// than the pool has room for were found (one where the table is
	// big; in a small network the pool then holds nearly all of it).
	OnionPoolLookups = 3
	OnionPoolRounds  = 4
	// OnionListSURBs is how many reply blocks a LIST carries: up to
	// 2·onion.MaxListReply entries per round.
	OnionListSURBs = 2
	// RecordExits is how many exits, over separate paths, a record
	// lookup asks: their answers are joined, so one exit alone cannot
	// hide a newer version.
	RecordExits = 2
	// DefaultOnionPutDelay and DefaultOnionDelay are the mean per-hop
	// delays section 14.8 advises: 30 s for stores (mail tolerates
	// minutes), 1 s for lists and fetches, which a user waits for.
	// Programs apply them; a zero OnionOptions delay means none.
	DefaultOnionPutDelay = 30 * time.Second
	DefaultOnionDelay    = time.Second
)

// OnionOptions configure the onion routing of a client's stores, lists
// and fetches.
type OnionOptions struct {
	// Delay is the mean per-hop delay of lists and fetches, PutDelay of
	// stores (0: no delays, as tests run).
	Delay    time.Duration
	PutDelay time.Duration
	// GuardFile keeps the guard between runs ("": a guard for this run
	// only).
	GuardFile string
	// Wait is how long a request waits beyond its delays before it
	// tries another path (0: DefaultOnionWait).
	Wait time.Duration
	// Progress, when set, hears where a request has got to. Concurrent
	// requests call it from their goroutines at once.
	Progress func(OnionProgress)
}

// OnionProgress is one step of an onion request, as far as the client
// can know it: the guard took the packet (Hop 1 of Hops), or the answer
// came back.
type OnionProgress struct {
	Op       string   // "put", "get", "list"
	Target   block.ID // the block or the listed prefix
	Hop      int      // the hop known to have the request, 1..Hops
	Answered bool     // the answer came back
	Attempt  int      // 1-based path attempt
	// GiveUp is when, by the node's clock, this attempt stops waiting
	// for its answers and tries another path (set with Hop 1).
	GiveUp time.Time
}

// OnionNetwork sends a client's stores, lists and fetches through three
// relays (docs/PROTOCOL.md section 14). It implements delivery.Network
// and delivery.KeyLogs, and looks records up (GetRecord) through exits
// too.
type OnionNetwork struct {
	n   *Node
	opt OnionOptions

	mu      sync.Mutex
	client  *onion.Client
	rnd     *rand.Rand
	guard   *onion.Guard
	pool    []onion.Hop
	waiting map[uint64]chan onion.Reply
	// failed are relays that did not take a packet in this run: paths
	// avoid them (a failing guard among them, until GuardGrace decides).
	failed map[block.ID]bool
	// suspect are the relays (the guard aside) of paths whose answers
	// never came: one of them dropped the packet, which cannot be told
	// apart from here, so later paths avoid all of them while enough
	// others remain.
	suspect map[block.ID]bool
	// pace keeps this client's packets under the rate relays take.
	pace *pacer
}

// Onion returns the onion-routed view of the network for this node's
// requests. It fetches the pubkey blocks of relays from the routing
// table and keeps or chooses the guard; ErrNoRelays when the table
// holds too few.
func (n *Node) Onion(ctx context.Context, opt OnionOptions) (*OnionNetwork, error) {
	if opt.Wait == 0 {
		opt.Wait = DefaultOnionWait
	}
	if opt.Delay < 0 || opt.PutDelay < 0 || opt.Wait < 0 {
		return nil, &ConfigError{Field: "OnionOptions", Value: fmt.Sprintf("%+v", opt), Reason: "durations must not be negative"}
	}
	var seed [16]byte
	_, _ = crand.Read(seed[:])
	rnd := rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
	c, err := onion.NewClient(onion.ClientConfig{ID: n.id.ID(), Work: n.cfg.OnionMinWork, Rand: rnd})
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	o := &OnionNetwork{n: n, opt: opt, client: c, rnd: rnd, waiting: map[uint64]chan onion.Reply{}, failed: map[block.ID]bool{}, suspect: map[block.ID]bool{},
		pace: newPacer(n.clk, clientPacketsPerSecond, clientBurst)}
	if err := o.fillPool(ctx); err != nil {
		return nil, err
	}
	if err := o.keepGuard(); err != nil {
		return nil, err
	}
	if !n.onionClient.CompareAndSwap(nil, o) {
		return nil, errors.New("node: an onion network is already open on this node")
	}
	return o, nil
}

// Close stops taking answers; requests still waiting end with their
// context.
func (o *OnionNetwork) Close() { o.n.onionClient.CompareAndSwap(o, nil) }

// Guard is the guard in use.
func (o *OnionNetwork) Guard() onion.Hop {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.guard.Hop
}

// GuardFailing reports whether the guard is marked failing.
func (o *OnionNetwork) GuardFailing() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return !o.guard.FailingSince.IsZero()
}

// fillPool fetches the pubkey blocks of up to OnionPoolSize relays:
// the routing table's contacts and the nodes that lookups of random IDs
// return (findRelays). A table holds at most K per bucket; the lookups
// reach nodes it has no room for, so paths are drawn from more of the
// network than the client's own neighbourhood, and a client in a small
// network knows nearly all of it before a lost path makes some relays
// suspect (growPool's lookups may then find nothing new: right after
// the clock moved hours, NODES answers name few contacts).
func (o *OnionNetwork) fillPool(ctx context.Context) error {
	o.pool = append(o.pool, o.findRelays(ctx, nil, OnionPoolSize)...)
	if len(o.pool) < onion.Hops {
		return fmt.Errorf("%w: %d relays with a known pubkey block, need %d", ErrNoRelays, len(o.pool), onion.Hops)
	}
	return nil
}

// growPool adds relays the pool does not hold yet, found as fillPool
// finds them, up to OnionPoolSize. A path that lost its packet makes
// its relays suspect; when the pool is too small to route around them
// (a client that met few nodes), the next path would run through them
// again.
func (o *OnionNetwork) growPool(ctx context.Context) {
	o.mu.Lock()
	known := make(map[block.ID]bool, len(o.pool))
	for _, h := range o.pool {
		known[h.ID()] = true
	}
	room := OnionPoolSize - len(o.pool)
	o.mu.Unlock()
	if room <= 0 {
		return
	}
	found := o.findRelays(ctx, known, room)
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, h := range found {
		if !known[h.ID()] && len(o.pool) < OnionPoolSize {
			known[h.ID()] = true
			o.pool = append(o.pool, h)
		}
	}
}

// findRelays returns up to n relays, none of known, with their pubkey
// blocks: the routing table's contacts and what lookups of random IDs
// return, in random order. The lookups run OnionPoolLookups at a time,
// up to OnionPoolRounds rounds, while fewer than n were found and the
// last round found someone new.
func (o *OnionNetwork) findRelays(ctx context.Context, known map[block.ID]bool, n int) []onion.Hop {
	var cs []transport.Contact
	seen := map[block.ID]bool{}
	add := func(c transport.Contact) {
		if !seen[c.ID] && !known[c.ID] && c.ID != o.n.id.ID() {
			seen[c.ID] = true
			cs = append(cs, c)
		}
	}
	for _, c := range o.n.dht.Contacts() {
		add(c.Contact)
	}
	var wg sync.WaitGroup
	for round, before := 0, -1; round < OnionPoolRounds && len(cs) < n && len(cs) > before && ctx.Err() == nil; round++ {
		before = len(cs)
		found := make([][]transport.Contact, OnionPoolLookups)
		targets := make([]block.ID, OnionPoolLookups)
		o.mu.Lock()
		for i := range targets {
			for j := range targets[i] {
				targets[i][j] = byte(o.rnd.UintN(256))
			}
		}
		o.mu.Unlock()
		for i := range found {
			wg.Go(func() { found[i], _ = o.n.Lookup(ctx, targets[i]) })
		}
		wg.Wait()
		for _, f := range found {
			for _, c := range f {
				add(c)
			}
		}
	}
	o.mu.Lock()
	o.rnd.Shuffle(len(cs), func(i, j int) { cs[i], cs[j] = cs[j], cs[i] })
	o.mu.Unlock()
	cs = cs[:min(len(cs), n)]
	hops := make([]onion.Hop, len(cs))
	for i, c := range cs {
		wg.Go(func() {
			if p, err := o.n.Pubkey(ctx, c.ID); err == nil {
				hops[i] = onion.Hop{Pubkey: p, Addr: c.Addr}
			}
		})
	}
	wg.Wait()
	return slices.DeleteFunc(hops, func(h onion.Hop) bool { return h.Pubkey == nil })
}

// keepGuard reads the guard file, keeps its guard while it is current,
// else draws a new one and writes it.
func (o *OnionNetwork) keepGuard() error {
	var g *onion.Guard
	if o.opt.GuardFile != "" {
		b, err := os.ReadFile(o.opt.GuardFile)
		switch {
		case err == nil:
			if g, err = onion.ParseGuard(b); err != nil {
				o.n.log.Warn("guard file unreadable; choosing a new guard", "file", o.opt.GuardFile, "err", err)
			}
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("node: reading the guard file: %w", err)
		}
	}
	kept, changed, err := onion.KeepGuard(o.rnd, g, o.pool, o.n.clk.Now())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNoRelays, err)
	}
	o.guard = kept
	if changed {
		return o.saveGuard()
	}
	return nil
}

func (o *OnionNetwork) saveGuard() error {
	if o.opt.GuardFile == "" {
		return nil
	}
	b, err := onion.EncodeGuard(o.guard)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if err := atomicfile.Write(o.opt.GuardFile, b, 0o600); err != nil {
		return fmt.Errorf("node: writing the guard file: %w", err)
	}
	return nil
}

// deliver hands a packet to the client; false when it answers none of
// its reply blocks (the relay, if any, takes it then).
func (o *OnionNetwork) deliver(pkt []byte) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	r, err := o.client.Receive(pkt)
	if err != nil {
		return !errors.Is(err, onion.ErrUnknownReply)
	}
	if ch := o.waiting[r.Request]; ch != nil {
		select {
		case ch <- r.Reply:
		default: // more answers than reply blocks: cannot happen
		}
	}
	return true
}

// paths draws a forward and a reply path for a request about target,
// never through the routing table's K nodes closest to it.
func (o *OnionNetwork) paths(target block.ID) (fwd, back []onion.Hop, err error) {
	near := o.near(target)
	guardOK := o.guard.Usable(o.n.clk.Now()) && !near[o.guard.Hop.ID()]

	var guard *onion.Hop
	if guardOK {
		guard = &o.guard.Hop
	}
	var pool []onion.Hop
	for _, avoidSuspects := range []bool{true, false} {
		if !avoidSuspects && len(o.suspect) == 0 {
			break
		}
		pool = o.eligible(near, guardOK, avoidSuspects, pool[:0])
		if fwd, err = onion.ForwardPath(o.rnd, pool, target, 0, guard); err == nil {
			back, err = onion.ReplyPath(o.rnd, pool, target, 0, guard)
		}
		if err == nil {
			break
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %d relays of %d clear of the %d nodes nearest %s: %w", ErrNoRelays, len(pool), len(o.pool), o.n.cfg.K, target.Short(), err)
	}
	return fwd, back, nil
}

// eligible appends to dst the pool's relays a path to a target may use:
// none of near, none that failed, the guard only if guardOK, and no
// suspect if avoidSuspects.
func (o *OnionNetwork) eligible(near map[block.ID]bool, guardOK, avoidSuspects bool, dst []onion.Hop) []onion.Hop {
	for _, h := range o.pool {
		id := h.ID()
		if !near[id] && !o.failed[id] && (id != o.guard.Hop.ID() || guardOK) && (!avoidSuspects || !o.suspect[id]) {
			dst = append(dst, h)
		}
	}
	return dst
}

// avoidsSuspects reports whether paths to target can be drawn clear of
// every suspect relay (true when there is none).
func (o *OnionNetwork) avoidsSuspects(target block.ID) bool {
	if len(o.suspect) == 0 {
		return true
	}
	near := o.near(target)
	guardOK := o.guard.Usable(o.n.clk.Now()) && !near[o.guard.Hop.ID()]
	var guard *onion.Hop
	if guardOK {
		guard = &o.guard.Hop
	}
	pool := o.eligible(near, guardOK, true, nil)
	if _, err := onion.ForwardPath(o.rnd, pool, target, 0, guard); err != nil {
		return false
	}
	_, err := onion.ReplyPath(o.rnd, pool, target, 0, guard)
	return err == nil
}

// near is the K nodes closest to target among the routing table's
// contacts and the pool (a sample of the table and of lookups): paths
// avoid them, and the path functions are told to exclude none more.
func (o *OnionNetwork) near(target block.ID) map[block.ID]bool {
	var known []block.ID
	for _, c := range o.n.dht.Closest(target, o.n.cfg.K) {
		known = append(known, c.ID)
	}
	for id := range onion.Closest(o.pool, target, o.n.cfg.K) {
		known = append(known, id)
	}
	slices.SortFunc(known, func(a, b block.ID) int { return closerTo(target, a, b) })
	near := map[block.ID]bool{}
	for _, id := range slices.Compact(known) {
		if len(near) == o.n.cfg.K {
			break
		}
		near[id] = true
	}
	return near
}

// GuardServes reports whether the guard would start a path to target:
// it is usable and not among the nodes closest to target (else a
// stand-in relay takes its place for that request).
func (o *OnionNetwork) GuardServes(target block.ID) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.guard.Usable(o.n.clk.Now()) && !o.near(target)[o.guard.Hop.ID()]
}

// closerTo orders a and b by their XOR distance to target.
func closerTo(target, a, b block.ID) int {
	for i := range target {
		if da, db := a[i]^target[i], b[i]^target[i]; da != db {
			return int(da) - int(db)
		}
	}
	return 0
}

// roundTrip sends the parts of one request over one path and collects
// the answers through surbs reply blocks given with the last part,
// trying another path when the first relay refuses or no answer comes
// in time.
func (o *OnionNetwork) roundTrip(ctx context.Context, op string, target block.ID, parts []onion.Request, surbs int) ([]onion.Reply, error) {
	var errs []error
	for attempt := 1; attempt <= OnionAttempts; attempt++ {
		o.mu.Lock()
		crowded := !o.avoidsSuspects(target)
		o.mu.Unlock()
		if crowded {
			o.growPool(ctx)
		}
		replies, err := o.try(ctx, op, target, parts, surbs, attempt)
		if err == nil {
			return replies, nil
		}
		if ctx.Err() != nil || errors.Is(err, ErrNoRelays) {
			return nil, err
		}
		errs = append(errs, err)
		o.n.log.Debug("onion path failed; trying another", "op", op, "attempt", attempt, "err", err)
	}
	return nil, fmt.Errorf("%w: %s %s after %d paths: %w", ErrOnionTimeout, op, target.Short(), OnionAttempts, errors.Join(errs...))
}

func (o *OnionNetwork) try(ctx context.Context, op string, target block.ID, parts []onion.Request, surbs, attempt int) ([]onion.Reply, error) {
	o.mu.Lock()
	fwd, back, err := o.paths(target)
	if err != nil {
		o.mu.Unlock()
		return nil, err
	}
	now := o.n.clk.Now()
	mean := o.opt.Delay
	if op == "put" {
		mean = o.opt.PutDelay
	}
	sent := make([]*onion.Sent, len(parts))
	var delay time.Duration
	for i, p := range parts {
		s := 0
		if i == len(parts)-1 {
			s = surbs
		}
		if sent[i], err = o.client.Send(now, p, fwd, back, s, mean); err != nil {
			o.mu.Unlock()
			return nil, fmt.Errorf("node: building an onion packet: %w", err)
		}
		for _, d := range sent[i].Delays {
			delay = max(delay, d)
		}
	}
	last := sent[len(sent)-1].Request
	ch := make(chan onion.Reply, surbs)
	o.waiting[last] = ch
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		delete(o.waiting, last)
		o.mu.Unlock()
	}()

	// The last relay of the reply path hands answers over the
	// connection the client keeps to it: the guard's, or, when the guard
	// sits this request out, one opened now.
	if lastHop := back[len(back)-1]; lastHop.ID() != fwd[0].ID() {
		if err := o.ping(ctx, lastHop); err != nil {
			o.mu.Lock()
			o.failed[lastHop.ID()] = true
			o.mu.Unlock()
			return nil, fmt.Errorf("reaching the last reply relay %s: %w", lastHop.ID().Short(), err)
		}
	}
	for _, s := range sent {
		if err := o.pace.wait(ctx); err != nil {
			return nil, err
		}
		if err := sendOnion(ctx, o.n.tr, transport.Contact{ID: s.First.To, Addr: s.First.Addr}, s.First.Packet); err != nil {
			if !errors.Is(err, ErrOnionRefused) {
				o.mu.Lock()
				o.failed[s.First.To] = true
				if s.First.To == o.guard.Hop.ID() {
					o.guard.Failed(o.n.clk.Now())
					_ = o.saveGuard()
				}
				o.mu.Unlock()
			}
			return nil, fmt.Errorf("first relay %s: %w", s.First.To.Short(), err)
		}
	}
	// Each delay drawn is at most the largest of the forward ones times
	// a margin for the reply hops, whose delays the client drew too but
	// does not see here. The wait runs on the node's clock, as the
	// relays' delays do, checked at least every onionPoll: a test that
	// moves the clock moves both.
	wait := o.opt.Wait + onion.Hops*delay + 2*onion.Hops*4*mean
	giveUp := now.Add(wait)
	o.progress(OnionProgress{Op: op, Target: target, Hop: 1, Attempt: attempt, GiveUp: giveUp})
	poll := o.n.clk.NewTicker(min(onionPoll, wait))
	defer poll.Stop()
	lastPing := o.n.clk.Now()
	var replies []onion.Reply
	for len(replies) < surbs {
		select {
		case r := <-ch:
			replies = append(replies, r)
			continue
		case <-poll.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		now := o.n.clk.Now()
		if !now.Before(giveUp) {
			o.mu.Lock()
			for _, h := range slices.Concat(fwd, back) {
				if h.ID() != o.guard.Hop.ID() {
					o.suspect[h.ID()] = true
				}
			}
			o.mu.Unlock()
			return nil, fmt.Errorf("%w: %d of %d answers after %v", ErrOnionTimeout, len(replies), surbs, wait)
		}
		if now.Sub(lastPing) >= o.keepAlive() {
			_ = o.ping(ctx, back[len(back)-1])
			lastPing = now
		}
	}
	if back[len(back)-1].ID() == o.guard.Hop.ID() {
		// The guard handed the answers over: it works again.
		o.mu.Lock()
		if !o.guard.FailingSince.IsZero() {
			o.guard.Answered()
			_ = o.saveGuard()
		}
		o.mu.Unlock()
	}
	o.progress(OnionProgress{Op: op, Target: target, Hop: onion.Hops, Answered: true, Attempt: attempt})
	return replies, nil
}

// keepAlive is how often a waiting request pings the relay its answers
// come through, so its connection does not idle out under long delays.
func (o *OnionNetwork) keepAlive() time.Duration { return transport.DefaultIdleTimeout / 3 }

// ping opens (or keeps) the connection to h with a PING.
func (o *OnionNetwork) ping(ctx context.Context, h onion.Hop) error {
	req, _ := kademlia.Encode(kademlia.Ping{})
	_, _, err := o.n.tr.Request(ctx, transport.Contact{ID: h.ID(), Addr: h.Addr}, req)
	return err
}

func (o *OnionNetwork) progress(p OnionProgress) {
	if o.opt.Progress != nil {
		o.opt.Progress(p)
	}
}

// replyError turns an exit's error answer into this package's errors.
func replyError(op string, r onion.Reply) error {
	e, ok := r.(onion.ErrorReply)
	if !ok {
		return fmt.Errorf("node: onion %s: unexpected %s answer", op, r.Kind())
	}
	if kademlia.ErrorCode(e.Code) == kademlia.CodeNotFound {
		return fmt.Errorf("%w (through the onion exit)", ErrNotFound)
	}
	return fmt.Errorf("node: onion %s: the exit failed: %s", op, kademlia.ErrorCode(e.Code))
}

// Put stores blk at the nodes closest to its ID through an exit.
func (o *OnionNetwork) Put(ctx context.Context, blk []byte, lifetime time.Duration) (err error) {
	defer func() { o.n.m.observeOp("onion_put", err) }()
	secs := uint32(min(lifetime/time.Second, time.Duration(kademlia.MaxLifetimeSeconds)))
	puts, err := onion.SplitPut(blk, max(secs, 1), 1)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	parts := make([]onion.Request, len(puts))
	for i, p := range puts {
		parts[i] = p
	}
	id := block.Sum(blk)
	replies, err := o.roundTrip(ctx, "put", id, parts, 1)
	if err != nil {
		return err
	}
	r, ok := replies[0].(onion.PutReply)
	if !ok {
		return replyError("put", replies[0])
	}
	if r.Stored == 0 {
		return fmt.Errorf("node: onion put %s: no storer took the block", id.Short())
	}
	return nil
}

// Get fetches the block named id through an exit: a first answer says
// its length, further requests carry a reply block per range left.
func (o *OnionNetwork) Get(ctx context.Context, id block.ID) (b []byte, err error) {
	defer func() { o.n.m.observeOp("onion_get", err) }()
	var total, got int
	var buf []byte
	for first := true; first || got < total; first = false {
		surbs := 1
		if !first {
			surbs = min(onion.MaxSURBs, (total-got+onion.MaxGetChunk-1)/onion.MaxGetChunk)
		}
		replies, err := o.roundTrip(ctx, "get", id, []onion.Request{onion.Get{ID: id, Offset: uint32(got)}}, surbs)
		if err != nil {
			return nil, err
		}
		for _, r := range replies {
			g, ok := r.(onion.GetReply)
			if !ok {
				return nil, replyError("get", r)
			}
			if first && buf == nil {
				if g.Total == 0 || g.Total > block.MaxBlockSize {
					return nil, fmt.Errorf("node: onion get %s: exit says %d bytes", id.Short(), g.Total)
				}
				total = int(g.Total)
				buf = make([]byte, total) // bounded by MaxBlockSize above
			}
			if int(g.Total) != total || int(g.Offset)+len(g.Chunk) > total {
				return nil, fmt.Errorf("node: onion get %s: answers disagree on the length", id.Short())
			}
			copy(buf[g.Offset:], g.Chunk)
		}
		// Ranges come back in any order; they are consecutive from got.
		for _, r := range replies {
			g := r.(onion.GetReply)
			got = max(got, int(g.Offset)+len(g.Chunk))
		}
	}
	if block.Sum(buf) != id {
		return nil, fmt.Errorf("node: onion get %s: the block does not hash to its ID", id.Short())
	}
	return buf, nil
}

// List returns the IDs of index blocks under the prefix, every page,
// through an exit.
func (o *OnionNetwork) List(ctx context.Context, target block.ID, bits int, since time.Time) (ids []block.ID, err error) {
	defer func() { o.n.m.observeOp("onion_list", err) }()
	if bits < 0 || bits > 255 {
		return nil, fmt.Errorf("node: list prefix of %d bits", bits)
	}
	req := onion.List{Target: target, Bits: uint8(bits), Since: uint64(max(since.Unix(), 0))}
	for {
		replies, err := o.roundTrip(ctx, "list", target, []onion.Request{req}, OnionListSURBs)
		if err != nil {
			return ids, err
		}
		more := false
		var page []onion.ListEntry
		for _, r := range replies {
			l, ok := r.(onion.ListReply)
			if !ok {
				return ids, replyError("list", r)
			}
			page = append(page, l.Entries...)
			more = more || l.More
		}
		sortListEntries(page)
		for _, e := range page {
			ids = append(ids, e.ID)
		}
		if !more || len(page) == 0 {
			return ids, nil
		}
		req.HasAfter, req.After = true, page[len(page)-1].ID
	}
}

// Delete asks the nodes closest to id to drop it, through an exit
// (section 14.9): the storers see the exit, never the recipient's
// client.
func (o *OnionNetwork) Delete(ctx context.Context, id block.ID, preimage [32]byte) (err error) {
	defer func() { o.n.m.observeOp("onion_delete", err) }()
	replies, err := o.roundTrip(ctx, "delete", id, []onion.Request{onion.Delete{ID: id, Preimage: preimage}}, 1)
	if err != nil {
		return err
	}
	r, ok := replies[0].(onion.DeleteReply)
	if !ok {
		return replyError("delete", replies[0])
	}
	if r.Deleted == 0 {
		return fmt.Errorf("node: onion delete %s: no node dropped the block", id.Short())
	}
	return nil
}

// Records returns the versions of the record at slot that the K nodes
// closest to it hold, as exits answered them: RecordExits exits, each
// over a forward and reply path of its own, and their answers joined,
// so that one exit that leaves out a newer version (a revocation) does
// not decide alone. At least one exit must answer. The bytes are not
// verified here: record.Newest and record.ResolveKeyLog do it.
func (o *OnionNetwork) Records(ctx context.Context, slot block.ID) (recs [][]byte, err error) {
	defer func() { o.n.m.observeOp("onion_record", err) }()
	type result struct {
		recs [][]byte
		err  error
	}
	results := make(chan result, RecordExits)
	for range RecordExits {
		go func() {
			r, err := o.recordsOnce(ctx, slot)
			results <- result{r, err}
		}()
	}
	seen := map[block.ID]bool{}
	var errs []error
	for range RecordExits {
		r := <-results
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		for _, b := range r.recs {
			if id := block.Sum(b); !seen[id] {
				seen[id] = true
				recs = append(recs, b)
			}
		}
	}
	if len(errs) == RecordExits {
		return nil, errors.Join(errs...)
	}
	return recs, nil
}

// recordsOnce asks one exit: one reply block, and when the exit says it
// had more versions than fit, again with enough for the K closest and
// the exit itself.
func (o *OnionNetwork) recordsOnce(ctx context.Context, slot block.ID) ([][]byte, error) {
	all := min(onion.MaxSURBs, (o.n.cfg.K+onion.MaxRecordReply)/onion.MaxRecordReply) // K closest and the exit
	for surbs := 1; ; surbs = all {
		replies, err := o.roundTrip(ctx, "record", slot, []onion.Request{onion.Record{Slot: slot}}, surbs)
		if err != nil {
			return nil, err
		}
		var recs [][]byte
		more := false
		for _, r := range replies {
			rr, ok := r.(onion.RecordReply)
			if !ok {
				return nil, replyError("record", r)
			}
			recs = append(recs, rr.Records...)
			more = more || rr.More
		}
		if !more || surbs == all {
			return recs, nil
		}
	}
}

// GetRecord returns the newest record at slot (record.Newest over what
// the exits answered); the lifetime left is not known through relays
// and is 0.
func (o *OnionNetwork) GetRecord(ctx context.Context, slot block.ID) (*record.Record, time.Duration, error) {
	recs, err := o.Records(ctx, slot)
	if err != nil {
		return nil, 0, err
	}
	r, err := record.Newest(slot, recs)
	return r, 0, err
}

// KeyState resolves address through its key log as kademlia's KeyState
// does (section 15.5), the lookups going through exits: the fold of the
// key logs answered, or the state of the pubkey block when there is no
// log.
func (o *OnionNetwork) KeyState(ctx context.Context, address block.ID) (record.KeyState, error) {
	recs, err := o.Records(ctx, record.KeyLogSlot(address))
	if err != nil {
		return record.KeyState{}, err
	}
	st, rerr := record.ResolveKeyLog(address, recs)
	if !errors.Is(rerr, record.ErrNotFound) {
		return st, rerr
	}
	b, err := o.Get(ctx, address)
	if err != nil {
		return record.KeyState{}, fmt.Errorf("%w: no key log and no pubkey block of %s: %w", ErrNotFound, identity.FormatAddress(address), err)
	}
	p, err := identity.ParsePubkey(b)
	if err != nil {
		return record.KeyState{}, fmt.Errorf("node: the block at %s is not a pubkey block: %w", identity.FormatAddress(address), err)
	}
	return record.InitialState(p), nil
}
