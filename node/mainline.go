package node

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/flowmail/flowmail/rendezvous"
	"github.com/flowmail/flowmail/transport"
)

// MainlineConfig turns on the rendezvous in the BitTorrent mainline DHT
// (docs/PROTOCOL.md 7.1): the node announces its QUIC port under its
// network's infohash and joins the peers it finds there.
type MainlineConfig struct {
	// Routers bootstrap the mainline DHT (nil: the public routers).
	Routers []string
	// Port is the mainline DHT's own UDP port (0: any free one). It is
	// never the QUIC port.
	Port int
	// Interval between announce-and-lookup rounds (0:
	// DefaultMainlineRounds).
	Interval time.Duration
	// JoinTimeout bounds the wait for a first peer when the node has
	// nobody else to join (0: DefaultMainlineJoin); later peers are
	// joined as the rendezvous finds them.
	JoinTimeout time.Duration
}

// startMainline starts the rendezvous for a full node.
func (n *Node) startMainline(ctx context.Context) error {
	mc := n.cfg.Mainline
	listen := ""
	if n.tr.LocalAddr().Addr().IsLoopback() {
		listen = "127.0.0.1" // a local mainline: accept loopback peers
	}
	rz, err := rendezvous.Start(ctx, rendezvous.Config{
		Network:    n.cfg.Network,
		Port:       int(n.tr.LocalAddr().Port()),
		LookupOnly: n.cfg.Client,
		ListenAddr: listen,
		DHTPort:    mc.Port,
		Routers:    mc.Routers,
		StateDir:   n.cfg.DataDir,
		Logger:     n.component("rendezvous"),
		Interval:   mc.Interval,
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMainline, err)
	}
	n.rz = rz
	return nil
}

// mainlinePeers waits for the first peers the rendezvous finds, when the
// node has no other way in.
func (n *Node) mainlinePeers(ctx context.Context) []transport.Contact {
	if n.rz == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Mainline.JoinTimeout)
	defer cancel()
	peers, err := n.rz.Lookup(ctx)
	if err != nil {
		n.log.Info("no peers in the mainline DHT yet", "err", err)
	}
	return n.unknownContacts(peers)
}

// unknownContacts turns rendezvous addresses into contacts, leaving out
// the node itself and addresses already in its routing table.
func (n *Node) unknownContacts(addrs []netip.AddrPort) []transport.Contact {
	known := map[netip.AddrPort]bool{n.tr.LocalAddr(): true}
	for _, c := range n.dht.Contacts() {
		known[c.Addr] = true
	}
	var out []transport.Contact
	for _, a := range addrs {
		if !known[a] {
			out = append(out, transport.Contact{Addr: a})
		}
	}
	return out
}

// watchMainline joins the peers the rendezvous finds later, for as long
// as the node runs: a node that started alone meets the ones that come.
func (n *Node) watchMainline(ctx context.Context) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-n.rz.Changed():
			}
			cs := n.unknownContacts(n.rz.Peers())
			if len(cs) == 0 {
				continue
			}
			bctx, cancel := context.WithTimeout(ctx, time.Minute)
			if err := n.dht.Bootstrap(bctx, cs); err != nil && ctx.Err() == nil {
				n.log.Debug("joining peers from the mainline DHT", "peers", len(cs), "err", err)
			}
			cancel()
		}
	}()
}
