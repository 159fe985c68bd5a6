package rendezvous

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/nictuku/dht"
)

// LocalMainline is a small BitTorrent mainline DHT on 127.0.0.1, for tests
// and local testnets: point Config.Routers at Routers and set
// Config.ListenAddr to "127.0.0.1", and flowmail nodes find each other
// without the Internet.
//
// Every node here runs nictuku/dht, whose get_peers answer carries only
// one peer per infohash: the newest one that announced to it (its peer
// ring never advances). A node therefore finds every node that joins
// after it, and on joining the newest before it; older ones only when
// they announce to its own DHT node. That is enough to connect a flowmail
// network (each dials what it finds, and Kademlia does the rest), not to
// list it. On the public mainline the nodes that hold an infohash run
// other implementations and answer with many peers.
type LocalMainline struct {
	// Routers are the "127.0.0.1:port" addresses of every node.
	Routers []string

	nodes     []*dht.DHT
	closeOnce sync.Once
	closeErr  error
}

// StartLocalMainline starts n mainline nodes on 127.0.0.1 with ephemeral
// ports: the first is the router of the others. n = 0 means 16, the
// fewest that work: with fewer the library floods (see minLocalNodes).
// The nodes keep no files, cap no per-IP traffic (they all share one IP),
// and log through logger (nil discards).
func StartLocalMainline(ctx context.Context, n int, logger *slog.Logger) (*LocalMainline, error) {
	if n == 0 {
		n = minLocalNodes
	}
	if n < minLocalNodes {
		return nil, fmt.Errorf("rendezvous: a local mainline needs at least %d nodes, got %d: with fewer, the DHT library keeps flooding its routers for more", minLocalNodes, n)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &LocalMainline{}
	var routers []string
	for i := range n {
		if err := ctx.Err(); err != nil {
			return nil, errors.Join(err, m.Close())
		}
		d, err := newDHT(mainlineOptions{
			listenIP:   netip.AddrFrom4([4]byte{127, 0, 0, 1}),
			routers:    routers,
			perIPLimit: noPerIPLimit,
			local:      true,
		}, logger.With("local_mainline_node", i))
		if err != nil {
			return nil, errors.Join(err, m.Close())
		}
		// These nodes never ask for peers, so nothing is ever sent on
		// d.PeersRequestResults and nobody needs to drain it.
		if err := d.Start(); err != nil {
			return nil, errors.Join(fmt.Errorf("rendezvous: starting local mainline node %d: %w", i, err), m.Close())
		}
		m.nodes = append(m.nodes, d)
		addr := fmt.Sprintf("127.0.0.1:%d", d.Port())
		m.Routers = append(m.Routers, addr)
		if i == 0 {
			routers = []string{addr}
		}
	}
	return m, nil
}

// Close stops every node, waiting a few seconds at most for each.
func (m *LocalMainline) Close() error {
	m.closeOnce.Do(func() {
		var errs []error
		for _, d := range m.nodes {
			errs = append(errs, stopDHT(d, defaultStopTimeout))
		}
		m.closeErr = errors.Join(errs...)
	})
	return m.closeErr
}
