package onion

import (
	"crypto/hpke"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/flowmail/flowmail/block"
)

// Defaults of RelayConfig.
const (
	// QueueSize is how many packets wait for their layer to be
	// opened: 8 MiB.
	QueueSize = 256
	// HoldSize is how many peeled packets wait out their delays:
	// 32 MiB, 10 minutes of 1.7 packets/s at MaxHopDelay, two hours at the
	// default store delay.
	HoldSize = 1024
	// QueuedPerSource is how many of the queued packets may come from
	// one source (ReceiveFrom): 1 MiB, an eighth of the queue, so that
	// one flooding peer, whatever work it grinds, leaves room for others.
	QueuedPerSource = 32
)

// RelayConfig is what a relay needs from its node.
type RelayConfig struct {
	// ID is the node's ID (the ID of its pubkey block); stamps are bound
	// to it.
	ID block.ID
	// Key is the node's HPKE private key, the one whose public half is
	// the enc_key of its pubkey block.
	Key hpke.PrivateKey
	// MinWork is the least stamp work accepted; 0 means MinStampWork.
	// Simulations may lower it to keep grinding cheap.
	MinWork int
	// QueueSize, HoldSize and ReplayEntries bound memory; 0 means the
	// default.
	QueueSize     int
	HoldSize      int
	ReplayEntries int
	// MaxQueuedPerSource bounds the queued packets of one source given
	// to ReceiveFrom; 0 means QueuedPerSource.
	MaxQueuedPerSource int
}

// Relay is one node's relay: a state machine without I/O or clock. Feed
// it packets with Receive, let it open layers with Process (the costly
// step, in order of work), and take what is due with Due.
type Relay struct {
	cfg    RelayConfig
	queue  workQueue
	held   holdQueue
	replay replayCache
	seq    uint64
	stats  Stats
	// queuedBy counts the queued packets of each named source.
	queuedBy map[string]int
	// observe, if set, sees every layer this relay opens: tests use it to
	// check what a relay can learn.
	observe func(layerView)
}

// layerView is everything a relay sees of one packet: the bytes that
// came, the command it opened, what it hands on and, at an exit, the
// body; and the output it will release.
type layerView struct {
	in, out []byte
	cmd     Command
	body    []byte
	output  Output
}

// Output is something due: a packet to send or a request to execute.
// Exactly one of Forward and Exit is set.
type Output struct {
	At      time.Time // when it became due: arrival time plus the hop's delay
	Source  string    // the source named to ReceiveFrom for the packet it came from
	Forward *Forwarded
	Exit    *ExitRequest
}

// Forwarded is a packet for the next node. An invalid Addr means: over
// the existing connection to To (a client that cannot be dialled).
type Forwarded struct {
	To     block.ID
	Addr   netip.AddrPort
	Packet []byte
}

// NewRelay returns a relay for cfg.
func NewRelay(cfg RelayConfig) (*Relay, error) {
	if cfg.Key == nil || cfg.Key.KEM().ID() != block.KEMMLKEM768X25519 {
		return nil, errors.New("onion: relay key is not an MLKEM768-X25519 private key")
	}
	if cfg.MinWork == 0 {
		cfg.MinWork = MinStampWork
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = QueueSize
	}
	if cfg.HoldSize <= 0 {
		cfg.HoldSize = HoldSize
	}
	if cfg.ReplayEntries <= 0 {
		cfg.ReplayEntries = ReplayEntries
	}
	if cfg.MaxQueuedPerSource <= 0 {
		cfg.MaxQueuedPerSource = QueuedPerSource
	}
	return &Relay{
		cfg:      cfg,
		queue:    workQueue{max: cfg.QueueSize},
		held:     holdQueue{max: cfg.HoldSize},
		replay:   replayCache{max: cfg.ReplayEntries},
		queuedBy: map[string]int{},
	}, nil
}

// Receive takes a packet from a peer. It checks what costs no public-key
// work (the length, the version, the stamp) and queues the packet by the
// work its stamp carries. A nil error means the packet is queued; an
// error says why it was dropped. The relay owns pkt from now on.
func (r *Relay) Receive(now time.Time, pkt []byte) error {
	return r.ReceiveFrom(now, pkt, "")
}

// ReceiveFrom is Receive for a packet from a named source (the node
// names the sender's address group): at most MaxQueuedPerSource packets
// of one source wait in the queue, further ones are dropped
// (ErrSourceFull) until the relay has served some. The empty name is no
// source and bounded only by the queue.
func (r *Relay) ReceiveFrom(now time.Time, pkt []byte, src string) error {
	r.stats.Received++
	if src != "" && r.queuedBy[src] >= r.cfg.MaxQueuedPerSource {
		return r.drop(fmt.Errorf("%w: %d packets of %s queued", ErrSourceFull, r.queuedBy[src], src))
	}
	if len(pkt) != PacketSize {
		return r.drop(fmt.Errorf("%w: %d bytes", ErrPacketSize, len(pkt)))
	}
	if pkt[0] != Version {
		return r.drop(fmt.Errorf("%w: %d", ErrVersion, pkt[0]))
	}
	slot := pkt[headerOffset : headerOffset+SlotSize]
	work, err := checkStamp(r.cfg.ID, slot[encOffset:encOffset+EncSize], slot[stampOffset:stampOffset+StampSize], r.cfg.MinWork)
	if err != nil {
		return r.drop(err)
	}
	r.seq++
	d := r.queue.push(queued{pkt: pkt, work: work, seq: r.seq, src: src})
	if d == nil || d.seq != r.seq {
		r.count(src, 1)
	}
	if d != nil {
		err := fmt.Errorf("%w: %d bits", ErrOutbid, d.work)
		r.drop(err)
		if d.seq == r.seq {
			return err
		}
		r.count(d.src, -1)
	}
	return nil
}

// count moves the number of queued packets of src by delta.
func (r *Relay) count(src string, delta int) {
	if src == "" {
		return
	}
	if r.queuedBy[src] += delta; r.queuedBy[src] <= 0 {
		delete(r.queuedBy, src)
	}
}

// Queued is the number of queued packets of src.
func (r *Relay) Queued(src string) int { return r.queuedBy[src] }

// Pending is the number of packets waiting for Process.
func (r *Relay) Pending() int { return len(r.queue.items) }

// Process opens the layer of the queued packet with the most work and,
// if it is good, holds what it yields until its delay has passed. It
// returns false when nothing was queued, and the reason when the packet
// was dropped.
func (r *Relay) Process(now time.Time) (bool, error) {
	q, ok := r.queue.pop()
	if !ok {
		return false, nil
	}
	r.count(q.src, -1)
	return true, r.process(now, q)
}

func (r *Relay) process(now time.Time, q queued) error {
	l, err := openLayer(r.cfg.Key, q.pkt)
	if err != nil {
		return r.drop(err)
	}
	fingerprint := binary.BigEndian.Uint64(q.pkt[payloadOffset:])
	if err := r.replay.check(EpochOf(now), l.cmd.Epoch, l.keys.tag, fingerprint); err != nil {
		return r.drop(err)
	}
	out := newPacket()
	peel(&l.keys, q.pkt, out)
	o := Output{At: now.Add(l.cmd.Delay), Source: q.src}
	var body []byte
	switch l.cmd.Type {
	case Forward:
		o.Forward = &Forwarded{To: l.cmd.Next, Addr: l.cmd.Addr, Packet: out}
	case Exit:
		var ok bool
		if body, ok = openBody(&l.keys.exit, out[payloadOffset:]); !ok {
			return r.drop(ErrExitMAC)
		}
		e, err := ParseExitBody(body)
		if err != nil {
			return r.drop(err)
		}
		o.Exit = &ExitRequest{Request: e.Request, surbs: e.SURBs}
	}
	if r.observe != nil {
		r.observe(layerView{in: q.pkt, out: out, cmd: l.cmd, body: body, output: o})
	}
	r.seq++
	if !r.held.add(held{out: o, work: q.work, seq: r.seq}) {
		return r.drop(ErrHoldFull)
	}
	return nil
}

// Due returns the next output whose time has come, if any.
func (r *Relay) Due(now time.Time) (Output, bool) {
	o, ok := r.held.due(now)
	if ok {
		if o.Forward != nil {
			r.stats.Forwarded++
		} else {
			r.stats.Exits++
		}
	}
	return o, ok
}

// Next is when the earliest held output falls due.
func (r *Relay) Next() (time.Time, bool) { return r.held.next() }

// Stats returns the counters.
func (r *Relay) Stats() Stats { return r.stats }

func (r *Relay) drop(err error) error {
	for i, reason := range DropReasons {
		if errors.Is(err, reason) {
			r.stats.Dropped[i]++
			return err
		}
	}
	r.stats.Dropped[numReasons-1]++ // errInternal
	return err
}

// DropReasons are the reasons a relay counts, in Stats.Dropped order.
var DropReasons = [...]error{
	ErrPacketSize, ErrVersion, ErrStampRelay, ErrStampWork, ErrOutbid,
	ErrLayerMAC, ErrCommand, ErrDelay, ErrEpoch, ErrReplay, ErrReplyReused,
	ErrReplayFull, ErrHoldFull, ErrExitMAC, ErrExitBody, ErrSourceFull, errInternal,
}

var errInternal = errors.New("onion: internal error")

// Stats counts what a relay did.
type Stats struct {
	Received  uint64             // packets given to Receive
	Forwarded uint64             // packets handed on
	Exits     uint64             // requests handed to the node to execute
	Dropped   [numReasons]uint64 // by DropReasons
}

const numReasons = len(DropReasons)

// DroppedFor returns how many packets were dropped for reason (one of
// DropReasons).
func (s Stats) DroppedFor(reason error) uint64 {
	for i, x := range DropReasons {
		if x == reason {
			return s.Dropped[i]
		}
	}
	return 0
}

// TotalDropped is the sum over all reasons.
func (s Stats) TotalDropped() uint64 {
	var n uint64
	for _, d := range s.Dropped {
		n += d
	}
	return n
}

// ExitRequest is a request an exit relay executes, with the reply blocks
// its answers go back through. Each reply block is used once.
type ExitRequest struct {
	Request Request
	surbs   []SURB
}

// ReplyBlocks is how many reply blocks are left.
func (e *ExitRequest) ReplyBlocks() int { return len(e.surbs) }

// Reply seals r into the next unused reply block and returns the packet
// and where to send it; ErrNoSURB once they are all used.
func (e *ExitRequest) Reply(r Reply) (*Forwarded, error) {
	if len(e.surbs) == 0 {
		return nil, ErrNoSURB
	}
	s := &e.surbs[0]
	pkt, err := SealReply(s, r)
	if err != nil {
		return nil, err
	}
	e.surbs = e.surbs[1:]
	return &Forwarded{To: s.FirstHop, Addr: s.Addr, Packet: pkt}, nil
}

// TakeReplyBlocks hands the unused reply blocks over, for answers that
// come later (an exit assembling a PUT answers when the last part comes,
// through the blocks of every part).
func (e *ExitRequest) TakeReplyBlocks() []SURB {
	s := e.surbs
	e.surbs = nil
	return s
}

// SealReply builds the packet that carries reply r through reply block s.
func SealReply(s *SURB, r Reply) ([]byte, error) {
	body, err := EncodeReply(r)
	if err != nil {
		return nil, err
	}
	pkt := make([]byte, 0, PacketSize)
	pkt = append(pkt, Version)
	pkt = append(pkt, s.Header[:]...)
	pkt = append(pkt, sealBody(&s.Key, body)...)
	return pkt, nil
}
