package node

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/blockstore"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/kademlia"
	"github.com/flowmail/flowmail/onion"
	"github.com/flowmail/flowmail/transport"
)

// ID is the node's ID in the DHT.
func (n *Node) ID() block.ID { return n.id.ID() }

// Identity is the node's own key.
func (n *Node) Identity() *identity.Identity { return n.id }

// Addr is the address the node listens on.
func (n *Node) Addr() netip.AddrPort { return n.tr.LocalAddr() }

// Contact is how others reach this node.
func (n *Node) Contact() transport.Contact { return transport.Contact{ID: n.ID(), Addr: n.Addr()} }

// Handle answers a request from a peer; in-memory transports are wired to
// it (QUIC is wired by Start).
func (n *Node) Handle(ctx context.Context, from transport.Peer, req []byte) []byte {
	if len(req) > 0 && req[0] == onion.MsgOnion {
		return n.handleOnion(from, req)
	}
	return n.dht.Handle(ctx, from, req)
}

// handleOnion takes a relay packet: into the relay of a full node, or,
// for a node with onion requests out, as an answer coming back.
func (n *Node) handleOnion(from transport.Peer, req []byte) []byte {
	if len(req) != 1+onion.PacketSize {
		return onionAnswer(fmt.Errorf("%w: %d bytes", onion.ErrPacketSize, len(req)-1))
	}
	if c := n.onionClient.Load(); c != nil && c.deliver(req[1:]) {
		return onionAnswer(nil)
	}
	if n.relay == nil {
		b, _ := kademlia.Encode(&kademlia.Error{Code: kademlia.CodeUnknownType, Text: "onion: this node relays nothing"})
		return b
	}
	return n.relay.handle(from, req)
}

// Put stores blk at the K nodes closest to its ID for lifetime.
func (n *Node) Put(ctx context.Context, blk []byte, lifetime time.Duration) (err error) {
	defer func() { n.m.observeOp("put", err) }()
	_, err = n.dht.Put(ctx, blk, lifetime)
	return err
}

// PutKnown is Put for a block whose ID the caller computed already; it
// is not hashed again (kademlia.DHT.PutKnown).
func (n *Node) PutKnown(ctx context.Context, id block.ID, blk []byte, lifetime time.Duration) (err error) {
	defer func() { n.m.observeOp("put", err) }()
	_, err = n.dht.PutKnown(ctx, id, blk, lifetime)
	return err
}

// PutDataMany stores data blocks whose IDs the caller computed (a mail's
// shards): one STORE_MANY per holder where the routing table knows the
// holders, PutKnown for the rest, workers requests at once; done is
// called with the index of each block once it is stored
// (kademlia.DHT.PutDataMany).
func (n *Node) PutDataMany(ctx context.Context, ids []block.ID, blocks [][]byte, lifetime time.Duration, workers int, done func(i int)) (err error) {
	defer func() { n.m.observeOp("put", err) }()
	_, err = n.dht.PutDataMany(ctx, ids, blocks, lifetime, workers, done)
	return err
}

// Get finds the block named id: in the own store first, then in the
// network. The bytes always hash to id.
func (n *Node) Get(ctx context.Context, id block.ID) (b []byte, err error) {
	defer func() { n.m.observeOp("get", err) }()
	if n.store != nil {
		b, _, err := n.store.Get(ctx, id)
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, blockstore.ErrNotFound) {
			// The network may still have it; the operator should know.
			n.log.Warn("reading the local store", "id", id.Short(), "err", err)
		}
	}
	b, _, err = n.dht.Get(ctx, id)
	return b, err
}

// List returns the IDs of index blocks near target (see kademlia.List).
// When the listing is incomplete it returns the IDs found with an error
// wrapping kademlia.ErrListIncomplete.
func (n *Node) List(ctx context.Context, target block.ID, bits int, since time.Time) (ids []block.ID, err error) {
	defer func() { n.m.observeOp("list", err) }()
	entries, err := n.dht.List(ctx, target, bits, since)
	if err != nil && !errors.Is(err, kademlia.ErrListIncomplete) {
		return nil, err
	}
	ids = make([]block.ID, len(entries))
	for i, e := range entries {
		ids[i] = e.ID
	}
	return ids, err // an incomplete listing still returns what it found
}

// Delete asks the holders of id to drop it.
func (n *Node) Delete(ctx context.Context, id block.ID, preimage [32]byte) (err error) {
	defer func() { n.m.observeOp("delete", err) }()
	_, err = n.dht.Delete(ctx, id, preimage)
	return err
}

// DeleteData asks the holders of id, a data block (a mail's shard), to
// drop it: at its R holders rather than the 2R closest Delete asks.
func (n *Node) DeleteData(ctx context.Context, id block.ID, preimage [32]byte) (err error) {
	defer func() { n.m.observeOp("delete", err) }()
	_, err = n.dht.DeleteData(ctx, id, preimage)
	return err
}

// DeleteMail deletes a fetched mail's index block and, when shards is
// not empty, its data blocks, which share shardPreimage: one DELETE_MANY
// per holder for the blocks whose holders the node knows
// (kademlia.DHT.DeleteMany). The error names the blocks no node deleted.
func (n *Node) DeleteMail(ctx context.Context, index block.ID, indexPreimage [32]byte, shards []block.ID, shardPreimage [32]byte) (err error) {
	defer func() { n.m.observeOp("delete", err) }()
	ts := make([]kademlia.DeleteTarget, 0, 1+len(shards))
	ts = append(ts, kademlia.DeleteTarget{ID: index, Preimage: indexPreimage, HeldByK: true})
	for _, id := range shards {
		ts = append(ts, kademlia.DeleteTarget{ID: id, Preimage: shardPreimage})
	}
	_, err = n.dht.DeleteMany(ctx, ts)
	return err
}

// Lookup returns the K closest live nodes to target.
func (n *Node) Lookup(ctx context.Context, target block.ID) ([]transport.Contact, error) {
	cs, _, err := n.dht.Lookup(ctx, target)
	return cs, err
}

// Pubkey fetches and verifies the pubkey block of addr.
func (n *Node) Pubkey(ctx context.Context, addr block.ID) (*identity.PublicKey, error) {
	b, err := n.Get(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("looking up %s: %w", identity.FormatAddress(addr), err)
	}
	p, err := identity.ParsePubkey(b)
	if err != nil {
		return nil, fmt.Errorf("pubkey block of %s: %w", identity.FormatAddress(addr), err)
	}
	if p.ID != addr {
		return nil, fmt.Errorf("looking up %s: got the pubkey block of %s", identity.FormatAddress(addr), p.Address())
	}
	return p, nil
}

// Store is the node's block store (nil in client mode), for tests and
// tools that inspect what a node holds.
func (n *Node) Store() blockstore.Store { return n.store }

// DHT is the node's Kademlia instance.
func (n *Node) DHT() *kademlia.DHT { return n.dht }

// Status is what `flowmail node status` prints.
type Status struct {
	ID        string        `json:"id"`
	Network   string        `json:"network"`
	Listen    string        `json:"listen"`
	Client    bool          `json:"client"`
	Started   time.Time     `json:"started"`
	Uptime    time.Duration `json:"uptime_ns"`
	Peers     []PeerStatus  `json:"peers"`
	Observed  []string      `json:"observed_addresses"`
	Store     *StoreStatus  `json:"store,omitempty"`
	Advertise []string      `json:"advertise,omitempty"`
}

// PeerStatus is one routing table contact.
type PeerStatus struct {
	ID       string    `json:"id"`
	Addr     string    `json:"addr"`
	Bucket   int       `json:"bucket"`
	LastSeen time.Time `json:"last_seen"`
	Failures int       `json:"failures"`
}

// StoreStatus describes the block store.
type StoreStatus struct {
	Blocks     int    `json:"blocks"`
	Bytes      int64  `json:"bytes"`
	QuotaBytes int64  `json:"quota_bytes"`
	Evicted    uint64 `json:"evicted"`
	Expired    uint64 `json:"expired"`
}

// Status describes the running node.
func (n *Node) Status() Status {
	st := Status{
		ID:      n.ID().String(),
		Network: n.cfg.Network,
		Listen:  n.Addr().String(),
		Client:  n.cfg.Client,
		Started: n.started,
		Uptime:  n.clk.Now().Sub(n.started).Round(time.Second),
	}
	for _, c := range n.dht.Contacts() {
		st.Peers = append(st.Peers, PeerStatus{ID: c.ID.String(), Addr: c.Addr.String(), Bucket: c.Bucket, LastSeen: c.LastSeen, Failures: c.Failures})
	}
	for _, o := range n.dht.ObservedAddrs() {
		st.Observed = append(st.Observed, o.Addr.String())
	}
	for _, a := range n.cfg.Advertise {
		st.Advertise = append(st.Advertise, a.String())
	}
	if n.store != nil {
		s := n.store.Stats()
		st.Store = &StoreStatus{Blocks: s.Blocks, Bytes: s.Bytes, QuotaBytes: s.QuotaBytes, Evicted: s.Evicted, Expired: s.Expired}
	}
	return st
}

// registerGauges exposes state read at scrape time.
func (n *Node) registerGauges() {
	n.m.gauge("flowmail_routing_table_contacts", "Contacts in the routing table.", func() float64 { return float64(n.dht.Size()) })
	n.m.counter("flowmail_lookups_total", "Iterative lookups run.", func() float64 { return float64(n.dht.Stats().Lookups) })
	n.m.counter("flowmail_lookup_stalls_total", "Lookup requests that stalled (no answer within the stall time).", func() float64 { return float64(n.dht.Stats().LookupStalls) })
	n.m.gauge("flowmail_uptime_seconds", "Seconds since the node started.", func() float64 { return n.clk.Now().Sub(n.started).Seconds() })
	peers := func(failing bool) func() float64 {
		return func() float64 {
			count := 0
			for _, c := range n.dht.Contacts() {
				if (c.Failures > 0) == failing {
					count++
				}
			}
			return float64(count)
		}
	}
	n.m.labelled("flowmail_peers", "Routing table contacts by state: responsive (last request answered) or failing.", "state", "responsive", peers(false))
	n.m.labelled("flowmail_peers", "Routing table contacts by state: responsive (last request answered) or failing.", "state", "failing", peers(true))
	if n.relay != nil {
		stat := func(f func(OnionStatus) float64) func() float64 {
			return func() float64 { st, _ := n.OnionStatus(); return f(st) }
		}
		n.m.counter("flowmail_onion_received_total", "Onion packets taken from peers.", stat(func(s OnionStatus) float64 { return float64(s.Relay.Received) }))
		n.m.counter("flowmail_onion_forwarded_total", "Onion packets handed on.", stat(func(s OnionStatus) float64 { return float64(s.Relay.Forwarded) }))
		n.m.counter("flowmail_onion_exits_total", "Onion requests executed as the exit.", stat(func(s OnionStatus) float64 { return float64(s.Relay.Exits) }))
		n.m.counter("flowmail_onion_throttled_total", "Onion packets refused for their source's rate.", stat(func(s OnionStatus) float64 { return float64(s.Throttled) }))
		n.m.counter("flowmail_onion_dropped_total", "Onion packets dropped, all reasons (the relay counts each reason).", stat(func(s OnionStatus) float64 { return float64(s.Relay.TotalDropped()) }))
	}
	if n.store != nil {
		n.m.gauge("flowmail_store_blocks", "Blocks held.", func() float64 { return float64(n.store.Stats().Blocks) })
		n.m.gauge("flowmail_store_bytes", "Bytes of blocks held.", func() float64 { return float64(n.store.Stats().Bytes) })
		n.m.gauge("flowmail_store_quota_bytes", "Quota of the block store (0: none).", func() float64 { return float64(n.store.Stats().QuotaBytes) })
		n.m.counter("flowmail_store_evicted_total", "Blocks evicted for quota.", func() float64 { return float64(n.store.Stats().Evicted) })
		n.m.counter("flowmail_store_expired_total", "Blocks expired.", func() float64 { return float64(n.store.Stats().Expired) })
	}
}

// AdminAddr is where the admin endpoint listens ("" when off).
func (n *Node) AdminAddr() string {
	if n.admin == nil {
		return ""
	}
	return n.admin.Addr()
}
