package onion

import (
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

// Hop is a relay on a path: its verified pubkey block (whose enc_key the
// layer is sealed to and whose ID the stamp is bound to) and where it
// listens.
type Hop struct {
	Pubkey *identity.PublicKey
	Addr   netip.AddrPort
}

// ID is the relay's node ID.
func (h Hop) ID() block.ID { return h.Pubkey.ID }

// DefaultMaxPending bounds the reply blocks a client waits on.
const DefaultMaxPending = 4096

// ErrPendingFull: the client waits on too many reply blocks to make more.
var ErrPendingFull = errors.New("onion: too many reply blocks pending")

// ClientConfig is what a client needs from its node.
type ClientConfig struct {
	// ID is the client's node ID, where the last relay of a reply path
	// delivers. In client mode it is a throwaway identity.
	ID block.ID
	// Addr is where that relay reaches the client; invalid means over the
	// connection the client keeps to it (its guard).
	Addr netip.AddrPort
	// Work is the stamp work ground for every layer; 0 means MinStampWork.
	Work int
	// Rand draws the delays. Production seeds it from crypto/rand; tests
	// from their seed.
	Rand *mrand.Rand
	// MaxPending bounds the reply blocks awaiting an answer; 0 means
	// DefaultMaxPending.
	MaxPending int
}

// Client builds request packets and opens the replies that come back: a
// state machine without I/O or clock, like Relay.
type Client struct {
	cfg     ClientConfig
	pending map[[16]byte]*pendingReply
	nextReq uint64
}

// pendingReply is what a client keeps of a reply block it gave out.
type pendingReply struct {
	request uint64
	epoch   uint32
	key     [32]byte
	payload [][32]byte // payload keys of the reply path, in path order
}

// NewClient returns a client for cfg.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.Rand == nil {
		return nil, errors.New("onion: client needs a Rand")
	}
	if cfg.ID == (block.ID{}) {
		return nil, errors.New("onion: client needs an ID")
	}
	if cfg.Work == 0 {
		cfg.Work = MinStampWork
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	return &Client{cfg: cfg, pending: make(map[[16]byte]*pendingReply)}, nil
}

// Sent is a request on its way.
type Sent struct {
	// Request numbers the request; replies carry the same number.
	Request uint64
	// First is the packet for the first relay of the forward path.
	First Forwarded
	// Delays are the delays drawn for the forward hops, in path order.
	Delays []time.Duration
}

// Send builds the packet that carries req through the forward path fwd
// to its last relay, the exit, with surbs reply blocks over the reply
// path back (whose last relay delivers to the client). mean is the mean
// per-hop delay, for forward and reply hops alike; 0 turns delays off.
func (c *Client) Send(now time.Time, req Request, fwd, back []Hop, surbs int, mean time.Duration) (*Sent, error) {
	if surbs < 0 || surbs > MaxSURBs {
		return nil, fmt.Errorf("onion: %d reply blocks, at most %d", surbs, MaxSURBs)
	}
	if len(c.pending)+surbs > c.cfg.MaxPending {
		return nil, fmt.Errorf("%w: %d", ErrPendingFull, len(c.pending))
	}
	if len(fwd) == 0 {
		return nil, errors.New("onion: empty forward path")
	}
	c.nextReq++
	s := &Sent{Request: c.nextReq}
	epoch := EpochOf(now)
	body := &ExitBody{Request: req}
	var made [][16]byte
	for range surbs {
		surb, id, p, err := c.newSURB(epoch, back, mean)
		if err != nil {
			c.forget(made)
			return nil, err
		}
		p.request = s.Request
		body.SURBs = append(body.SURBs, surb)
		c.pending[id] = p
		made = append(made, id)
	}
	specs := make([]hopSpec, len(fwd))
	for i, h := range fwd {
		cmd := Command{Type: Exit, Epoch: epoch, Delay: c.delay(mean)}
		if i < len(fwd)-1 {
			cmd.Type, cmd.Next, cmd.Addr = Forward, fwd[i+1].ID(), fwd[i+1].Addr
		}
		raw, err := cmd.Encode()
		if err != nil {
			c.forget(made)
			return nil, err
		}
		specs[i] = hopSpec{id: h.ID(), key: h.Pubkey.EncKey, cmd: raw[:], work: c.cfg.Work}
		s.Delays = append(s.Delays, cmd.Delay)
	}
	pkt, err := sealRequest(specs, body)
	if err != nil {
		c.forget(made)
		return nil, err
	}
	s.First = Forwarded{To: fwd[0].ID(), Addr: fwd[0].Addr, Packet: pkt}
	return s, nil
}

func (c *Client) forget(ids [][16]byte) {
	for _, id := range ids {
		delete(c.pending, id)
	}
}

// sealRequest builds a whole request packet: the header of specs and the
// exit body sealed to the last hop under every hop's payload keystream.
func sealRequest(specs []hopSpec, body *ExitBody) ([]byte, error) {
	plain, err := body.Encode()
	if err != nil {
		return nil, err
	}
	b, err := buildHeader(specs)
	if err != nil {
		return nil, err
	}
	return assemble(b, sealBody(&b.keys[len(b.keys)-1].exit, plain)), nil
}

// assemble puts header and payload together and lays every hop's payload
// keystream over the payload, so that each hop's peel removes its own.
func assemble(b *built, payload []byte) []byte {
	pkt := make([]byte, PacketSize)
	pkt[0] = Version
	copy(pkt[headerOffset:], b.header)
	copy(pkt[payloadOffset:], payload)
	for i := range b.keys {
		keystream(&b.keys[i].payload, pkt[payloadOffset:], pkt[payloadOffset:])
	}
	return pkt
}

// delay draws an exponential delay of the given mean, in whole
// milliseconds, capped at MaxHopDelay.
func (c *Client) delay(mean time.Duration) time.Duration {
	if mean <= 0 {
		return 0
	}
	d := time.Duration(c.cfg.Rand.ExpFloat64() * float64(mean))
	if d > MaxHopDelay || d < 0 {
		d = MaxHopDelay
	}
	return d.Truncate(time.Millisecond)
}

// newSURB builds a reply block over back, whose last relay delivers to
// the client, and what the client keeps to open the reply.
func (c *Client) newSURB(epoch uint32, back []Hop, mean time.Duration) (SURB, [16]byte, *pendingReply, error) {
	var s SURB
	var id [16]byte
	if len(back) == 0 {
		return s, id, nil, errors.New("onion: empty reply path")
	}
	specs := make([]hopSpec, len(back))
	for i, h := range back {
		cmd := Command{Type: Forward, Epoch: epoch, Delay: c.delay(mean), Next: c.cfg.ID, Addr: c.cfg.Addr}
		if i < len(back)-1 {
			cmd.Next, cmd.Addr = back[i+1].ID(), back[i+1].Addr
		}
		raw, err := cmd.Encode()
		if err != nil {
			return s, id, nil, err
		}
		specs[i] = hopSpec{id: h.ID(), key: h.Pubkey.EncKey, cmd: raw[:], work: c.cfg.Work}
	}
	b, err := buildHeader(specs)
	if err != nil {
		return s, id, nil, err
	}
	s.FirstHop, s.Addr = back[0].ID(), back[0].Addr
	copy(s.Header[:], b.header)
	if _, err := rand.Read(s.Key[:]); err != nil {
		return s, id, nil, fmt.Errorf("onion: reading randomness: %w", err)
	}
	copy(id[:], b.last)
	p := &pendingReply{epoch: epoch, key: s.Key}
	for i := range b.keys {
		p.payload = append(p.payload, b.keys[i].payload)
	}
	return s, id, p, nil
}

// Received is a reply that came back.
type Received struct {
	Request uint64 // the Sent.Request it answers
	Reply   Reply
}

// Receive opens a packet delivered to the client by the last relay of a
// reply path. Each reply block opens once: a second packet for it gets
// ErrUnknownReply.
func (c *Client) Receive(pkt []byte) (*Received, error) {
	if len(pkt) != PacketSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrPacketSize, len(pkt))
	}
	if pkt[0] != Version {
		return nil, fmt.Errorf("%w: %d", ErrVersion, pkt[0])
	}
	id := [16]byte(pkt[headerOffset : headerOffset+16])
	p, ok := c.pending[id]
	if !ok {
		return nil, ErrUnknownReply
	}
	delete(c.pending, id)
	payload := append([]byte(nil), pkt[payloadOffset:]...)
	for i := range p.payload {
		keystream(&p.payload[i], payload, payload)
	}
	body, ok := openBody(&p.key, payload)
	if !ok {
		return nil, ErrReplyMAC
	}
	r, err := ParseReply(body)
	if err != nil {
		return nil, err
	}
	return &Received{Request: p.request, Reply: r}, nil
}

// Expire forgets reply blocks whose epoch relays no longer accept: no
// answer can come through them.
func (c *Client) Expire(now time.Time) {
	cur := EpochOf(now)
	for id, p := range c.pending {
		if !windowed(p.epoch, cur) {
			delete(c.pending, id)
		}
	}
}

// Pending is the number of reply blocks awaiting an answer.
func (c *Client) Pending() int { return len(c.pending) }
