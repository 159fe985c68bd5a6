package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/blockstore"
	"github.com/flowmail/flowmail/kademlia"
	"github.com/flowmail/flowmail/onion"
	"github.com/flowmail/flowmail/record"
	"github.com/flowmail/flowmail/transport"
)

// Limits of a node's onion relay beside the onion package's own
// (docs/PROTOCOL.md sections 11 and 14.11).
const (
	// OnionPacketsPerSecond is how many packets per second one source
	// (transport.DefaultGroup of the sender) may hand a relay, with
	// bursts of OnionBurst: a relay's decapsulations are shared between
	// sources, not won by the fastest sender.
	OnionPacketsPerSecond = 16
	OnionBurst            = 64
	// MaxOnionExits requests a relay executes at once as an exit; more
	// wait in the relay's hold queue.
	MaxOnionExits = 16
	// MaxOnionForwards packets a relay hands on at once.
	MaxOnionForwards = 64
	// OnionExitTimeout bounds the DHT work of one exit request.
	OnionExitTimeout = 2 * time.Minute
	// onionPoll is the longest the relay loop sleeps: held packets fall
	// due by the node's clock, which a test may move faster than the
	// timers it makes.
	onionPoll = time.Second
)

// ErrOnionThrottled: a source sent packets faster than its share.
var ErrOnionThrottled = errors.New("node: onion packets from this source above their rate")

// OnionObserver sees what a node's relay sees: tests check with it what
// each relay can learn. Calls come from the relay's goroutines and must
// not block.
type OnionObserver interface {
	// OnionReceived: a packet came from a peer (before any check).
	OnionReceived(relay block.ID, from transport.Peer)
	// OnionForwarded: a peeled packet that came from source (the
	// transport.DefaultGroup of its sender, as a string) leaves for to.
	OnionForwarded(relay block.ID, source string, to block.ID, addr netip.AddrPort)
	// OnionExit: the relay executes req, which came from source.
	OnionExit(relay block.ID, source string, req onion.Request)
	// OnionHeld: the relay opened a packet and holds it (or its
	// request) for its delay; OnionStatus().NextDue says until when.
	OnionHeld(relay block.ID)
}

// onionRelay is a full node's relay: it takes MsgOnion packets from the
// transport into an onion.Relay, opens their layers on its loop, hands
// packets on and executes exit requests through the DHT.
type onionRelay struct {
	n       *Node
	observe OnionObserver
	// ctx lives from start until Close: packets handed on use it, not
	// the shorter context of the exit request that answered them.
	ctx context.Context

	mu      sync.Mutex
	relay   *onion.Relay
	asm     onion.Assembler
	buckets map[transport.Group]*tokenBucket
	rate    float64
	burst   float64
	// throttled counts packets refused for rate, beside the relay's
	// own drop counters.
	throttled uint64

	wake     chan struct{}
	exits    chan struct{} // semaphore of MaxOnionExits
	forwards chan struct{} // semaphore of MaxOnionForwards
}

// tokenBucket is one source's allowance of packets (and a client's
// own pace: pacer).
type tokenBucket struct {
	tokens float64
	last   time.Time
}

// take refills b at rate up to burst as of now and takes one token if
// there is one; else it returns how long until one is there.
func (b *tokenBucket) take(now time.Time, rate, burst float64) time.Duration {
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(burst, b.tokens+el.Seconds()*rate)
		b.last = now
	}
	if b.tokens < 1 {
		return time.Duration((1 - b.tokens) / rate * float64(time.Second))
	}
	b.tokens--
	return 0
}

func newOnionRelay(n *Node) (*onionRelay, error) {
	r, err := onion.NewRelay(onion.RelayConfig{ID: n.id.ID(), Key: n.id.EncryptionKey(), MinWork: n.cfg.OnionMinWork})
	if err != nil {
		return nil, fmt.Errorf("node: onion relay: %w", err)
	}
	o := &onionRelay{
		n: n, observe: n.cfg.OnionObserver, relay: r,
		buckets:  map[transport.Group]*tokenBucket{},
		rate:     n.cfg.OnionRate,
		burst:    float64(n.cfg.OnionBurst),
		wake:     make(chan struct{}, 1),
		exits:    make(chan struct{}, MaxOnionExits),
		forwards: make(chan struct{}, MaxOnionForwards),
	}
	return o, nil
}

// allow takes one token of src's bucket at now.
func (o *onionRelay) allow(src transport.Group, now time.Time) bool {
	b := o.buckets[src]
	if b == nil {
		if len(o.buckets) >= 4*transport.MaxInbound {
			// Sources come and go: forget the full buckets, which
			// are what a new bucket would be anyway.
			for g, x := range o.buckets {
				if x.tokens+now.Sub(x.last).Seconds()*o.rate >= o.burst {
					delete(o.buckets, g)
				}
			}
		}
		b = &tokenBucket{tokens: o.burst, last: now}
		o.buckets[src] = b
	}
	return b.take(now, o.rate, o.burst) == 0
}

// handle takes one MsgOnion request: the rate of its source, then the
// relay's cheap checks; the answer says whether the packet was taken.
func (o *onionRelay) handle(from transport.Peer, req []byte) []byte {
	if o.observe != nil {
		o.observe.OnionReceived(o.n.id.ID(), from)
	}
	src := transport.DefaultGroup(from.Addr)
	now := o.n.clk.Now()
	o.mu.Lock()
	if !o.allow(src, now) {
		o.throttled++
		o.mu.Unlock()
		return onionAnswer(fmt.Errorf("%w: %v", ErrOnionThrottled, src))
	}
	// The transport's buffer is the handler's only while it runs.
	pkt := append([]byte(nil), req[1:]...)
	err := o.relay.ReceiveFrom(now, pkt, src.String())
	o.mu.Unlock()
	if err == nil {
		select {
		case o.wake <- struct{}{}:
		default:
		}
	}
	return onionAnswer(err)
}

// onionAnswer is OK, ERROR 7 for a packet outbid or over its source's
// share, ERROR 1 for every other refusal (section 14.11).
func onionAnswer(err error) []byte {
	var m kademlia.Message = kademlia.OK{}
	switch {
	case err == nil:
	case errors.Is(err, onion.ErrOutbid), errors.Is(err, onion.ErrSourceFull), errors.Is(err, ErrOnionThrottled):
		m = &kademlia.Error{Code: kademlia.CodeOverloaded, Text: "onion: " + err.Error()}
	default:
		m = &kademlia.Error{Code: kademlia.CodeMalformed, Text: "onion: " + err.Error()}
	}
	b, _ := kademlia.Encode(m)
	return b
}

// start runs the relay's loop until ctx ends; Node.Close waits for it.
func (o *onionRelay) start(ctx context.Context) {
	o.ctx = ctx
	o.n.wg.Add(1)
	go o.run(ctx)
}

// run opens queued layers, releases what is due and sleeps on the
// node's clock until the next packet is due or another arrives.
func (o *onionRelay) run(ctx context.Context) {
	defer o.n.wg.Done()
	t := o.n.clk.NewTimer(onionPoll)
	defer t.Stop()
	for {
		for o.step() {
			if ctx.Err() != nil {
				return
			}
		}
		o.mu.Lock()
		next, ok := o.relay.Next()
		o.mu.Unlock()
		wait := onionPoll
		if ok {
			wait = min(max(next.Sub(o.n.clk.Now()), time.Millisecond), onionPoll)
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-o.wake:
		case <-t.C:
		}
	}
}

// step opens one queued layer or releases one due output; it reports
// whether it did anything.
func (o *onionRelay) step() bool {
	o.mu.Lock()
	now := o.n.clk.Now()
	if ok, err := o.relay.Process(now); ok {
		o.mu.Unlock()
		switch {
		case err != nil:
			o.n.log.Debug("onion packet dropped", "err", err)
		case o.observe != nil:
			o.observe.OnionHeld(o.n.id.ID())
		}
		return true
	}
	out, ok := o.relay.Due(now)
	o.mu.Unlock()
	if !ok {
		return false
	}
	switch {
	case out.Forward != nil:
		o.forward(out.Source, *out.Forward)
	case out.Exit != nil:
		o.exit(out.Source, out.Exit)
	}
	return true
}

// forward hands a peeled packet to its next hop: to this node's own
// relay when the path comes back through it, else over the transport.
func (o *onionRelay) forward(src string, f onion.Forwarded) {
	if o.observe != nil {
		o.observe.OnionForwarded(o.n.id.ID(), src, f.To, f.Addr)
	}
	if f.To == o.n.id.ID() {
		o.mu.Lock()
		err := o.relay.Receive(o.n.clk.Now(), f.Packet)
		o.mu.Unlock()
		if err != nil {
			o.n.log.Debug("onion packet to self dropped", "err", err)
		}
		return
	}
	o.spawn(o.forwards, func(ctx context.Context) {
		if err := sendOnion(ctx, o.n.tr, transport.Contact{ID: f.To, Addr: f.Addr}, f.Packet); err != nil {
			o.n.log.Debug("onion forward failed", "to", f.To.Short(), "err", err)
		}
	})
}

// spawn runs fn on a goroutine of the node once sem has room (sem
// bounds how many run at once), under the relay's context.
func (o *onionRelay) spawn(sem chan struct{}, fn func(context.Context)) {
	select {
	case sem <- struct{}{}:
	case <-o.ctx.Done():
		return
	}
	o.n.wg.Add(1)
	go func() {
		defer o.n.wg.Done()
		defer func() { <-sem }()
		fn(o.ctx)
	}()
}

// sendOnion sends one packet as a MsgOnion request and reads the answer.
func sendOnion(ctx context.Context, tr transport.Transport, to transport.Contact, pkt []byte) error {
	req := make([]byte, 0, 1+len(pkt))
	req = append(append(req, onion.MsgOnion), pkt...)
	resp, _, err := tr.Request(ctx, to, req)
	if err != nil {
		return err
	}
	m, err := kademlia.Decode(resp)
	if err != nil {
		return fmt.Errorf("node: answer to an onion packet: %w", err)
	}
	switch m := m.(type) {
	case kademlia.OK:
		return nil
	case *kademlia.Error:
		if m.Code == kademlia.CodeOverloaded {
			return fmt.Errorf("%w: %s", ErrOnionRefused, m.Text)
		}
		return fmt.Errorf("%w: %s: %s", ErrOnionRefused, m.Code, m.Text)
	}
	return fmt.Errorf("node: answer to an onion packet: unexpected %s", m.Type())
}

// exit executes a request through the DHT on a goroutine of its own, at
// most MaxOnionExits at once.
func (o *onionRelay) exit(src string, e *onion.ExitRequest) {
	if o.observe != nil {
		o.observe.OnionExit(o.n.id.ID(), src, e.Request)
	}
	o.spawn(o.exits, func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, OnionExitTimeout)
		defer cancel()
		o.execute(ctx, src, e)
	})
}

// execute runs one exit request and answers through its reply blocks.
func (o *onionRelay) execute(ctx context.Context, src string, e *onion.ExitRequest) {
	var replies []onion.Reply
	var blocks []onion.SURB // reply blocks the assembler handed back
	switch req := e.Request.(type) {
	case onion.Put:
		o.mu.Lock()
		blk, lifetime, surbs, err := o.asm.Add(o.n.clk.Now(), req, e.TakeReplyBlocks())
		o.mu.Unlock()
		if err != nil || blk == nil {
			if err != nil {
				o.n.log.Debug("onion put part refused", "id", req.ID.Short(), "err", err)
			}
			return // incomplete: the last part answers
		}
		blocks = surbs
		stored, err := o.n.dht.Put(ctx, blk, time.Duration(lifetime)*time.Second)
		if err != nil && stored == 0 {
			replies = []onion.Reply{onion.ErrorReply{Request: onion.KindPut, Code: uint8(errorCode(err))}}
		} else {
			replies = []onion.Reply{onion.PutReply{Stored: uint8(min(stored, 255))}}
		}
	case onion.List:
		replies = o.list(ctx, req, e.ReplyBlocks())
	case onion.Get:
		replies = o.get(ctx, req, e.ReplyBlocks())
	case onion.Record:
		replies = o.records(ctx, req, e.ReplyBlocks())
	case onion.Delete:
		replies = fill(o.delete(ctx, req), e.ReplyBlocks())
	case onion.Ping:
		for range e.ReplyBlocks() {
			replies = append(replies, onion.PingReply{})
		}
	case onion.Drop:
		return
	}
	for i, r := range replies {
		var f *onion.Forwarded
		var err error
		if blocks != nil {
			// A PUT answers every part's reply blocks alike.
			for j := range blocks {
				var pkt []byte
				if pkt, err = onion.SealReply(&blocks[j], r); err == nil {
					o.forward(src, onion.Forwarded{To: blocks[j].FirstHop, Addr: blocks[j].Addr, Packet: pkt})
				}
			}
			break
		}
		if f, err = e.Reply(r); err != nil {
			o.n.log.Debug("onion reply not sent", "n", i, "err", err)
			break
		}
		o.forward(src, *f)
	}
}

// list answers a LIST through n reply blocks: entries in ascending ID
// order after After, up to Limit, MaxListReply per answer; every reply
// block is used, the last ones empty, so the client knows when all
// came.
func (o *onionRelay) list(ctx context.Context, req onion.List, n int) []onion.Reply {
	entries, err := o.n.dht.List(ctx, req.Target, int(req.Bits), time.Unix(int64(min(req.Since, 1<<62)), 0))
	if err != nil && !errors.Is(err, kademlia.ErrListIncomplete) {
		return fill(onion.ErrorReply{Request: onion.KindList, Code: uint8(errorCode(err))}, n)
	}
	sortEntries(entries)
	var out []onion.ListEntry
	for _, e := range entries {
		if req.HasAfter && !idLess(req.After, e.ID) {
			continue
		}
		out = append(out, onion.ListEntry{ID: e.ID, StoredAt: uint64(max(e.StoredAt.Unix(), 0))})
	}
	limit := min(int(req.Limit), n*onion.MaxListReply)
	if req.Limit == 0 {
		limit = n * onion.MaxListReply
	}
	more := len(out) > limit
	out = out[:min(len(out), limit)]
	replies := make([]onion.Reply, n)
	for i := range n {
		part := out[min(i*onion.MaxListReply, len(out)):min((i+1)*onion.MaxListReply, len(out))]
		replies[i] = onion.ListReply{Entries: part, More: more && i == n-1}
	}
	return replies
}

// get answers consecutive ranges of a block from req.Offset, one per
// reply block.
func (o *onionRelay) get(ctx context.Context, req onion.Get, n int) []onion.Reply {
	b, err := o.n.Get(ctx, req.ID)
	if err != nil {
		return fill(onion.ErrorReply{Request: onion.KindGet, Code: uint8(errorCode(err))}, n)
	}
	var replies []onion.Reply
	for off := int(req.Offset); off < len(b) && len(replies) < n; off += onion.MaxGetChunk {
		end := min(off+onion.MaxGetChunk, len(b))
		replies = append(replies, onion.GetReply{Total: uint32(len(b)), Offset: uint32(off), Chunk: b[off:end]})
	}
	if len(replies) == 0 {
		return fill(onion.ErrorReply{Request: onion.KindGet, Code: uint8(kademlia.CodeMalformed)}, n)
	}
	return replies
}

// records answers a RECORD through n reply blocks: every distinct valid
// version the K closest hold (recordVersions), up to MaxRecordReply per
// answer; More on the last when some are left out.
func (o *onionRelay) records(ctx context.Context, req onion.Record, n int) []onion.Reply {
	answers, err := o.n.dht.Records(ctx, req.Slot)
	if err != nil && len(answers.Valid) == 0 {
		return fill(onion.ErrorReply{Request: onion.KindRecord, Code: uint8(errorCode(err))}, n)
	}
	vs := recordVersions(answers.Valid)
	replies := make([]onion.Reply, n)
	for i := range n {
		r := onion.RecordReply{
			Records: vs[min(i*onion.MaxRecordReply, len(vs)):min((i+1)*onion.MaxRecordReply, len(vs))],
			More:    i == n-1 && len(vs) > n*onion.MaxRecordReply,
		}
		replies[i] = r
	}
	return replies
}

// recordVersions orders the distinct versions among valid answers of
// one slot: first those no other answer supersedes (the newest of each
// history, and whatever ended the slot: they decide the client's fold),
// then the rest; each group by how many nodes answered it, most first.
func recordVersions(valid []kademlia.RecordAnswer) [][]byte {
	type version struct {
		rec     *record.Record
		holders int
		beaten  bool
	}
	var vs []*version
	seen := map[block.ID]*version{}
	for _, a := range valid {
		id := block.Sum(a.Record.Bytes())
		if v := seen[id]; v != nil {
			v.holders++
			continue
		}
		v := &version{rec: a.Record, holders: 1}
		seen[id] = v
		vs = append(vs, v)
	}
	for _, a := range vs {
		for _, b := range vs {
			a.beaten = a.beaten || (a != b && record.Supersedes(a.rec, b.rec) == nil)
		}
	}
	slices.SortStableFunc(vs, func(a, b *version) int {
		if a.beaten != b.beaten {
			if a.beaten {
				return 1
			}
			return -1
		}
		return b.holders - a.holders
	})
	out := make([][]byte, len(vs))
	for i, v := range vs {
		out[i] = v.rec.Bytes()
	}
	return out
}

// delete runs a DELETE at the K closest nodes to req.ID.
func (o *onionRelay) delete(ctx context.Context, req onion.Delete) onion.Reply {
	n, err := o.n.dht.Delete(ctx, req.ID, req.Preimage)
	if err != nil && n == 0 {
		return onion.ErrorReply{Request: onion.KindDelete, Code: uint8(errorCode(err))}
	}
	return onion.DeleteReply{Deleted: uint8(min(n, 255))}
}

func sortEntries(es []blockstore.ListEntry) {
	slices.SortFunc(es, func(a, b blockstore.ListEntry) int { return bytes.Compare(a.ID[:], b.ID[:]) })
}

func sortListEntries(es []onion.ListEntry) {
	slices.SortFunc(es, func(a, b onion.ListEntry) int { return bytes.Compare(a.ID[:], b.ID[:]) })
}

func idLess(a, b block.ID) bool { return bytes.Compare(a[:], b[:]) < 0 }

func fill(r onion.Reply, n int) []onion.Reply {
	out := make([]onion.Reply, n)
	for i := range out {
		out[i] = r
	}
	return out
}

// errorCode maps a DHT failure to a section 8 error code for a reply.
func errorCode(err error) kademlia.ErrorCode {
	switch {
	case errors.Is(err, kademlia.ErrNotFound):
		return kademlia.CodeNotFound
	case errors.Is(err, context.DeadlineExceeded):
		return kademlia.CodeOverloaded
	}
	return kademlia.CodeInternal
}

// OnionStatus is what a node's relay has done and holds.
type OnionStatus struct {
	Relay     onion.Stats
	Throttled uint64    // packets refused for their source's rate
	Queued    int       // packets waiting for their layer to be opened
	NextDue   time.Time // when the earliest held packet falls due (zero: none)
}

// OnionStatus describes the node's relay; ok is false when it runs none.
func (n *Node) OnionStatus() (st OnionStatus, ok bool) {
	o := n.relay
	if o == nil {
		return st, false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	st = OnionStatus{Relay: o.relay.Stats(), Throttled: o.throttled, Queued: o.relay.Pending()}
	if t, held := o.relay.Next(); held {
		st.NextDue = t
	}
	return st, true
}
