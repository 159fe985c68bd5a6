package kademlia

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/blockstore"
	"github.com/flowmail/flowmail/internal/clock"
	"github.com/flowmail/flowmail/transport"
)

// Defaults of the Config knobs that the protocol does not fix.
const (
	DefaultBucketIPLimit   = 2
	DefaultTableIPLimit    = 10
	DefaultMaxFailures     = 3
	DefaultRequestTimeout  = 10 * time.Second
	DefaultRefreshInterval = time.Hour
	// RepublishInterval is how often holders re-store what they hold
	// (docs/PROTOCOL.md section 11), ±10% per block.
	RepublishInterval = time.Hour
)

// Config holds what a DHT needs from the node that runs it. Time and
// randomness come only from Clock and Rand, so a simulation replays.
type Config struct {
	// ID is the node's own ID: the ID of the pubkey block its transport
	// presents.
	ID block.ID
	// Transport carries requests; its handler must be DHT.Handle.
	Transport transport.Transport
	// Store holds the blocks of a full node; nil in client mode.
	Store blockstore.Store
	// Client runs the DHT in client mode: it looks up, stores and lists
	// at others but stores nothing for them, and its transport tells
	// peers so, which keeps it out of their routing tables.
	Client bool

	// K is the bucket size and replication factor, 1 to K (0: K). Only
	// tests of small networks lower it.
	K int
	// Alpha is how many requests a lookup keeps in flight (0: Alpha).
	Alpha int

	// Clock is the only source of time: dates (expiry, republishing,
	// refresh) and the stall timers of lookups (nil: clock.Real).
	Clock clock.Clock
	// Rand drives jitter and refresh targets (required). The DHT
	// serialises its use of it.
	Rand *rand.Rand
	// Logger receives debug and warning records (nil: discard).
	Logger *slog.Logger

	// BucketIPLimit and TableIPLimit bound the contacts of one IP group
	// (/24 for IPv4, /48 for IPv6) in one bucket and in the whole table.
	// Zero means the default; a negative value turns the limit off (for
	// testnets on one loopback address).
	BucketIPLimit int
	TableIPLimit  int
	// MaxFailures is how many consecutive failed requests remove a
	// contact from the table (0: DefaultMaxFailures).
	MaxFailures int
	// RequestTimeout bounds each request (0: DefaultRequestTimeout).
	RequestTimeout time.Duration
	// StallTimeout is how long a lookup request may go unanswered before
	// the lookup stops counting it against Alpha and passes over it: the
	// request goes on and its answer is still used, and it fails only at
	// RequestTimeout or the dial timeout (docs/PROTOCOL.md section 8).
	// Zero means adaptive: srtt + 4·rttvar of this node's answered lookup
	// requests, 250 ms to 2 s (500 ms before the first answer). Negative
	// turns stall handling off.
	StallTimeout time.Duration
	// RefreshInterval is how long a bucket may go without a lookup before
	// Refresh looks up a random ID in it (0: DefaultRefreshInterval).
	RefreshInterval time.Duration
	// RepublishInterval is how long a held block waits between
	// republishes, ±10% (0: RepublishInterval).
	RepublishInterval time.Duration
	// ShardRepublishInterval is the same for data blocks, held at only R
	// nodes (0: block.ShardRepublishInterval). Simulations shorten it.
	ShardRepublishInterval time.Duration
}

// Errors of the DHT's operations, wrapped with detail.
var (
	ErrNoContacts = errors.New("kademlia: no contact answered")
	ErrNotFound   = errors.New("kademlia: block not found")
	ErrNotStored  = errors.New("kademlia: no node stored the block")
	ErrBadReply   = errors.New("kademlia: unexpected reply")
)

// DHT is one node's view of the network. Its methods are safe for
// concurrent use; every goroutine a method starts has returned when the
// method returns.
type DHT struct {
	cfg   Config
	log   *slog.Logger
	table *table

	rngMu sync.Mutex
	rng   *rand.Rand

	observed observedAddrs
	repub    republishSchedule
	records  recordLimiter
	rtt      rttEstimator
	stats    counters
	near     nearMemo
}

// New checks cfg and returns a DHT with an empty routing table.
func New(cfg Config) (*DHT, error) {
	switch {
	case cfg.Transport == nil:
		return nil, errors.New("kademlia: Config.Transport is required")
	case cfg.Rand == nil:
		return nil, errors.New("kademlia: Config.Rand is required")
	case cfg.Client && cfg.Store != nil:
		return nil, errors.New("kademlia: a client-mode DHT stores nothing; Config.Store must be nil")
	case !cfg.Client && cfg.Store == nil:
		return nil, errors.New("kademlia: a full node needs Config.Store")
	case cfg.K < 0 || cfg.K > K:
		return nil, fmt.Errorf("kademlia: Config.K = %d, want 1 to %d (0 for %d)", cfg.K, K, K)
	case cfg.Alpha < 0:
		return nil, fmt.Errorf("kademlia: Config.Alpha = %d is negative", cfg.Alpha)
	}
	cfg.Clock = clock.Or(cfg.Clock)
	if cfg.K == 0 {
		cfg.K = K
	}
	if cfg.Alpha == 0 {
		cfg.Alpha = Alpha
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.BucketIPLimit = limitOrDefault(cfg.BucketIPLimit, DefaultBucketIPLimit)
	cfg.TableIPLimit = limitOrDefault(cfg.TableIPLimit, DefaultTableIPLimit)
	if cfg.MaxFailures <= 0 {
		cfg.MaxFailures = DefaultMaxFailures
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = DefaultRefreshInterval
	}
	if cfg.RepublishInterval <= 0 {
		cfg.RepublishInterval = RepublishInterval
	}
	if cfg.ShardRepublishInterval <= 0 {
		cfg.ShardRepublishInterval = block.ShardRepublishInterval
	}
	d := &DHT{
		cfg: cfg,
		log: cfg.Logger,
		rng: cfg.Rand,
		table: newTable(cfg.ID, tableLimits{
			k:           cfg.K,
			cache:       cfg.K,
			maxFailures: cfg.MaxFailures,
			bucketIP:    cfg.BucketIPLimit,
			tableIP:     cfg.TableIPLimit,
		}, cfg.Clock.Now()),
	}
	d.repub.due = make(map[block.ID]time.Time)
	d.repub.set = make(map[block.ID]time.Time)
	d.repub.clock = cfg.Clock
	d.repub.stretch = float64(cfg.ShardRepublishInterval) / float64(cfg.RepublishInterval)
	return d, nil
}

func limitOrDefault(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return -1
	}
	return v
}

// ID returns the node's own ID.
func (d *DHT) ID() block.ID { return d.cfg.ID }

// Size returns the number of contacts in the routing table.
func (d *DHT) Size() int { return d.table.len() }

// Contacts returns every routing-table contact with its bucket, when it
// was last seen and its consecutive failures.
func (d *DHT) Contacts() []ContactInfo { return d.table.contacts() }

// Closest returns up to n contacts of the routing table closest to
// target, closest first, without asking the network.
func (d *DHT) Closest(target block.ID, n int) []transport.Contact {
	return d.table.closest(target, n, block.ID{})
}

// counters are cumulative figures for metrics.
type counters struct {
	requestsSent    atomic.Uint64
	requestsFailed  atomic.Uint64
	requestsHandled atomic.Uint64
	lookups         atomic.Uint64
	lookupMessages  atomic.Uint64
	lookupStalls    atomic.Uint64
	handedOff       atomic.Uint64
}

// Stats are cumulative counts since New.
type Stats struct {
	RequestsSent    uint64
	RequestsFailed  uint64
	RequestsHandled uint64
	Lookups         uint64
	LookupMessages  uint64
	// LookupStalls counts lookup requests unanswered for the stall time.
	LookupStalls uint64
	// HandedOff counts data blocks dropped after their R closest nodes
	// took them (docs/PROTOCOL.md 9.7).
	HandedOff uint64
	TableSize int
}

// Stats returns the cumulative counts.
func (d *DHT) Stats() Stats {
	return Stats{
		RequestsSent:    d.stats.requestsSent.Load(),
		RequestsFailed:  d.stats.requestsFailed.Load(),
		RequestsHandled: d.stats.requestsHandled.Load(),
		Lookups:         d.stats.lookups.Load(),
		LookupMessages:  d.stats.lookupMessages.Load(),
		LookupStalls:    d.stats.lookupStalls.Load(),
		HandedOff:       d.stats.handedOff.Load(),
		TableSize:       d.table.len(),
	}
}

func (d *DHT) now() time.Time { return d.cfg.Clock.Now() }

// jitter returns interval scaled by a random factor in [0.9, 1.1).
func (d *DHT) jitter(interval time.Duration) time.Duration {
	d.rngMu.Lock()
	f := 0.9 + 0.2*d.rng.Float64()
	d.rngMu.Unlock()
	return time.Duration(float64(interval) * f)
}

// randomID returns an ID drawn from Rand.
func (d *DHT) randomID() block.ID {
	var id block.ID
	d.rngMu.Lock()
	for j := 0; j < block.IDSize; j += 8 {
		binary.BigEndian.PutUint64(id[j:], d.rng.Uint64())
	}
	d.rngMu.Unlock()
	return id
}

// randomIDInBucket returns a random ID that shares exactly i leading bits
// with the own ID: the own ID's first i bits, bit i flipped.
func (d *DHT) randomIDInBucket(i int) block.ID {
	self := d.cfg.ID
	byteIdx, bit := i/8, byte(0x80)>>(i%8)
	self[byteIdx] ^= bit
	return d.randomIDInRegion(prefixRegion{prefix: self, bits: i + 1})
}

// observe adds a verified peer that talked to us or answered us to the
// routing table, unless it runs in client mode.
func (d *DHT) observe(p transport.Peer) {
	if p.Client || p.ID.IsZero() {
		return
	}
	d.table.seen(transport.Contact{ID: p.ID, Addr: p.Addr}, d.now())
}

// request sends m to c and returns the decoded reply. A peer that answers
// is observed; one that does not answer (while ctx still runs) counts a
// failure against c, at c.Addr. An ERROR reply comes back as a *Error.
func (d *DHT) request(ctx context.Context, c transport.Contact, m Message) (Message, transport.Peer, error) {
	req, err := Encode(m)
	if err != nil {
		return nil, transport.Peer{}, err
	}
	return d.requestEncoded(ctx, c, m, req)
}

// requestEncoded is request for m already encoded as req (exchangeEncoded).
func (d *DHT) requestEncoded(ctx context.Context, c transport.Contact, m Message, req []byte) (Message, transport.Peer, error) {
	resp, peer, fault, err := d.exchangeEncoded(ctx, c, m, req)
	if !fault.ID.IsZero() {
		d.table.failed(fault)
	}
	return resp, peer, err
}

// exchange is request without charging the failure to the routing table:
// it returns the contact at fault instead, so a lookup that charged a
// stalled peer already does not charge it twice. The fault is c when c
// could not be reached at c.Addr; the answering peer's ID alone (Addr
// zero: wherever it is held) when its verified answer was not a message;
// and zero when no one is at fault: an answer, an overloaded peer, or ctx
// ended first.
func (d *DHT) exchange(ctx context.Context, c transport.Contact, m Message) (Message, transport.Peer, transport.Contact, error) {
	req, err := Encode(m)
	if err != nil {
		return nil, transport.Peer{}, transport.Contact{}, err
	}
	return d.exchangeEncoded(ctx, c, m, req)
}

// exchangeEncoded is exchange for m already encoded as req, which it
// only reads: the STOREs of one put share one copy of the block.
func (d *DHT) exchangeEncoded(ctx context.Context, c transport.Contact, m Message, req []byte) (Message, transport.Peer, transport.Contact, error) {
	rctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
	defer cancel()
	d.stats.requestsSent.Add(1)
	raw, peer, err := d.cfg.Transport.Request(rctx, c, req)
	if err != nil {
		var fault transport.Contact
		if ctx.Err() == nil {
			d.stats.requestsFailed.Add(1)
			if !errors.Is(err, transport.ErrOverloaded) {
				fault = c
			}
		}
		return nil, peer, fault, fmt.Errorf("%v to %v: %w", m.Type(), c.Addr, err)
	}
	resp, err := Decode(raw)
	if err != nil {
		d.stats.requestsFailed.Add(1)
		return nil, peer, transport.Contact{ID: peer.ID}, fmt.Errorf("%w: %v from %v: %w", ErrBadReply, m.Type(), peer.ID.Short(), err)
	}
	d.observe(peer)
	if e, ok := resp.(*Error); ok {
		return nil, peer, transport.Contact{}, e
	}
	return resp, peer, transport.Contact{}, nil
}

// expect narrows the reply of request to the message type it awaits.
func expect[T Message](m Message, _ transport.Peer, err error) (T, error) {
	var zero T
	if err != nil {
		return zero, err
	}
	v, ok := m.(T)
	if !ok {
		return zero, fmt.Errorf("%w: got %v, want %v", ErrBadReply, m.Type(), zero.Type())
	}
	return v, nil
}

// fanOut runs fn for every contact at once and waits for all of them. It
// returns how many succeeded and the errors of the others.
func fanOut(ctx context.Context, cs []transport.Contact, fn func(context.Context, transport.Contact) error) (int, []error) {
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() { errs[i] = fn(ctx, c) })
	}
	wg.Wait()
	return countErrors(errs)
}

// countErrors returns how many of errs are nil, and the others.
func countErrors(errs []error) (int, []error) {
	ok := 0
	var failed []error
	for _, err := range errs {
		if err == nil {
			ok++
		} else {
			failed = append(failed, err)
		}
	}
	return ok, failed
}

// ObservedAddr is an address peers saw this node's packets come from.
type ObservedAddr struct {
	Addr      netip.AddrPort
	Reporters int // distinct peers that reported it (counted up to 16)
	LastSeen  time.Time
}

// Bounds of the observed-address record: a few addresses, a few
// reporters each, so a flood of PONGs cannot grow it.
const (
	maxObservedAddrs     = 8
	maxObservedReporters = 16
)

type observedAddrs struct {
	mu    sync.Mutex
	addrs map[netip.AddrPort]*observedEntry
}

type observedEntry struct {
	reporters map[block.ID]struct{}
	lastSeen  time.Time
}

func (o *observedAddrs) record(addr netip.AddrPort, reporter block.ID, now time.Time) {
	if !addr.IsValid() {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.addrs == nil {
		o.addrs = make(map[netip.AddrPort]*observedEntry)
	}
	e, ok := o.addrs[addr]
	if !ok {
		if len(o.addrs) >= maxObservedAddrs {
			var oldest netip.AddrPort
			for a, x := range o.addrs {
				if !oldest.IsValid() || x.lastSeen.Before(o.addrs[oldest].lastSeen) {
					oldest = a
				}
			}
			delete(o.addrs, oldest)
		}
		e = &observedEntry{reporters: make(map[block.ID]struct{})}
		o.addrs[addr] = e
	}
	if len(e.reporters) < maxObservedReporters {
		e.reporters[reporter] = struct{}{}
	}
	e.lastSeen = now
}

// ObservedAddrs returns the addresses PONGs reported, most reporters
// first: what the node can learn of its external address.
func (d *DHT) ObservedAddrs() []ObservedAddr {
	o := &d.observed
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]ObservedAddr, 0, len(o.addrs))
	for a, e := range o.addrs {
		out = append(out, ObservedAddr{Addr: a, Reporters: len(e.reporters), LastSeen: e.lastSeen})
	}
	slices.SortFunc(out, func(a, b ObservedAddr) int {
		if a.Reporters != b.Reporters {
			return b.Reporters - a.Reporters
		}
		return b.LastSeen.Compare(a.LastSeen)
	})
	return out
}
