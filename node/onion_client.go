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
	"sync"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/internal/atomicfile"
	"github.com/flowmail/flowmail/kademlia"
	"github.com/flowmail/flowmail/onion"
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
	// OnionListSURBs is how many reply blocks a LIST carries: up to
	// 2·onion.MaxListReply entries per round.
	OnionListSURBs = 2
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
}

// OnionNetwork sends a client's stores, lists and fetches through three
// relays (docs/PROTOCOL.md section 14). It implements delivery.Network;
// Delete has no onion form and fails with ErrOnionDelete.
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
	o := &OnionNetwork{n: n, opt: opt, client: c, rnd: rnd, waiting: map[uint64]chan onion.Reply{}, failed: map[block.ID]bool{}}
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

// fillPool fetches the pubkey blocks of up to OnionPoolSize contacts.
func (o *OnionNetwork) fillPool(ctx context.Context) error {
	cs := o.n.dht.Contacts()
	o.rnd.Shuffle(len(cs), func(i, j int) { cs[i], cs[j] = cs[j], cs[i] })
	cs = cs[:min(len(cs), OnionPoolSize)]
	hops := make([]onion.Hop, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if p, err := o.n.Pubkey(ctx, c.ID); err == nil {
				hops[i] = onion.Hop{Pubkey: p, Addr: c.Addr}
			}
		}()
	}
	wg.Wait()
	for _, h := range hops {
		if h.Pubkey != nil {
			o.pool = append(o.pool, h)
		}
	}
	if len(o.pool) < onion.Hops {
		return fmt.Errorf("%w: %d relays with a known pubkey block among %d contacts, need %d", ErrNoRelays, len(o.pool), len(cs), onion.Hops)
	}
	return nil
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
	// The pool may be a sample of the table: the K closest are the
	// table's, taken out here, so the path functions exclude none more.
	near := map[block.ID]bool{}
	for _, c := range o.n.dht.Closest(target, o.n.cfg.K) {
		near[c.ID] = true
	}
	guardOK := o.guard.Usable(o.n.clk.Now()) && !near[o.guard.Hop.ID()]
	var pool []onion.Hop
	for _, h := range o.pool {
		if !near[h.ID()] && !o.failed[h.ID()] && (h.ID() != o.guard.Hop.ID() || guardOK) {
			pool = append(pool, h)
		}
	}
	var guard *onion.Hop
	if guardOK {
		guard = &o.guard.Hop
	}
	if fwd, err = onion.ForwardPath(o.rnd, pool, target, 0, guard); err == nil {
		back, err = onion.ReplyPath(o.rnd, pool, target, 0, guard)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %d relays of %d clear of the %d nodes nearest %s: %w", ErrNoRelays, len(pool), len(o.pool), o.n.cfg.K, target.Short(), err)
	}
	return fwd, back, nil
}

// roundTrip sends the parts of one request over one path and collects
// the answers through surbs reply blocks given with the last part,
// trying another path when the first relay refuses or no answer comes
// in time.
func (o *OnionNetwork) roundTrip(ctx context.Context, op string, target block.ID, parts []onion.Request, surbs int) ([]onion.Reply, error) {
	var errs []error
	for attempt := 1; attempt <= OnionAttempts; attempt++ {
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
	o.progress(OnionProgress{Op: op, Target: target, Hop: 1, Attempt: attempt})

	// Each delay drawn is at most the largest of the forward ones times
	// a margin for the reply hops, whose delays the client drew too but
	// does not see here.
	wait := o.opt.Wait + onion.Hops*delay + 2*onion.Hops*4*mean
	t := o.n.clk.NewTimer(wait)
	defer t.Stop()
	keep := o.n.clk.NewTicker(o.keepAlive())
	defer keep.Stop()
	var replies []onion.Reply
	for len(replies) < surbs {
		select {
		case r := <-ch:
			replies = append(replies, r)
		case <-keep.C:
			_ = o.ping(ctx, back[len(back)-1])
		case <-t.C:
			return nil, fmt.Errorf("%w: %d of %d answers after %v", ErrOnionTimeout, len(replies), surbs, wait)
		case <-ctx.Done():
			return nil, ctx.Err()
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

// Delete has no onion form: asking the storers directly would show them
// the recipient's client.
func (o *OnionNetwork) Delete(ctx context.Context, id block.ID, preimage [32]byte) error {
	return fmt.Errorf("%w: %s stays until it expires", ErrOnionDelete, id.Short())
}
