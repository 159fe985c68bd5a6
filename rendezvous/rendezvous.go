package rendezvous

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// ErrClosed is returned by Lookup after Close.
var ErrClosed = errors.New("rendezvous: closed")

// Rendezvous is a running mainline DHT node that announces this flowmail
// node and collects the others. Its methods are safe for concurrent use.
type Rendezvous struct {
	s        settings
	log      *slog.Logger
	localIPs map[netip.Addr]bool
	probe    *net.UDPConn // the watchdog's socket (watchdog.go)

	kick     chan struct{}      // a round is wanted now; buffered 1
	ctx      context.Context    // cancelled by Close: the round loop stops
	cancel   context.CancelFunc //
	roundsWG sync.WaitGroup

	// cur is the running library node. Only the round loop replaces it
	// (after a wedge), and Close reads it once the round loop is gone.
	cur *instance

	mu          sync.Mutex
	addr        netip.AddrPort            // the DHT's socket
	routers     []string                  // resolved; empty until a name resolves
	peers       map[netip.AddrPort]uint64 // flowmail peer -> sequence when last seen
	contacts    map[netip.AddrPort]uint64 // mainline node -> sequence when last heard
	contactsNew bool                      // contacts changed since the last save
	seq         uint64
	changed     chan struct{} // closed and replaced when a new peer appears
	closed      bool
	restarts    int // by the watchdog
	wedged      int // replaced nodes that would not stop

	closeOnce sync.Once
	closeErr  error
}

// Start starts a mainline DHT node on its own UDP socket, announces
// cfg.Port under the network's infohash and starts looking up the
// network's other nodes, every cfg.Interval and whenever Lookup asks.
// ctx bounds Start itself (router name resolution), not the node's life:
// Close stops it.
func Start(ctx context.Context, cfg Config) (*Rendezvous, error) {
	s, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("rendezvous: state directory: %w", err)
	}
	r := &Rendezvous{
		s:        s,
		log:      s.Logger.With("component", "rendezvous"),
		localIPs: localIPs(),
		kick:     make(chan struct{}, 1),
		peers:    map[netip.AddrPort]uint64{},
		contacts: map[netip.AddrPort]uint64{},
		changed:  make(chan struct{}),
	}
	saved, err := loadContacts(s.StateDir)
	if err != nil {
		// A damaged cache costs a slower bootstrap, not the node.
		r.log.Warn("ignoring saved mainline contacts", "err", err)
		saved = nil
	}
	for _, c := range saved {
		r.noteContact(c)
	}
	r.contactsNew = false
	r.routers = resolveRouters(ctx, s.Routers, r.log, slog.LevelWarn)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := probePort(s.listenIP, s.DHTPort); err != nil {
		return nil, err
	}
	probeIP := netip.AddrFrom4([4]byte{127, 0, 0, 1})
	if s.listenIP.IsValid() && !s.listenIP.IsUnspecified() {
		probeIP = s.listenIP
	}
	r.probe, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(probeIP, 0)))
	if err != nil {
		return nil, fmt.Errorf("rendezvous: watchdog socket: %w", err)
	}
	r.cur, err = r.startInstance(s.DHTPort)
	if err != nil {
		r.probe.Close()
		return nil, err
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.roundsWG.Add(1)
	go r.rounds()
	r.log.Info("mainline rendezvous started", "network", s.Network,
		"infohash", fmt.Sprintf("%x", s.infohash), "dht_addr", r.Addr(),
		"quic_port", s.Port, "routers", len(r.routers), "saved_contacts", len(saved))
	return r, nil
}

// Addr returns the address of the DHT's UDP socket (0.0.0.0 when it
// listens on every address).
func (r *Rendezvous) Addr() netip.AddrPort {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addr
}

// InfoHash returns the infohash this node announces under.
func (r *Rendezvous) InfoHash() [20]byte { return r.s.infohash }

// Lookup starts a lookup round and returns the peers found so far, most
// recently seen first, as soon as there is at least one. With none yet it
// keeps searching, a round a second, until the first peer or ctx. The
// addresses are unauthenticated: dial them and let the handshake decide.
func (r *Rendezvous) Lookup(ctx context.Context) ([]netip.AddrPort, error) {
	again := time.NewTicker(minRoundGap)
	defer again.Stop()
	for {
		select {
		case r.kick <- struct{}{}:
		default: // a round is already pending
		}
		r.mu.Lock()
		closed, peers, ch := r.closed, r.snapshotLocked(), r.changed
		r.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		if len(peers) > 0 {
			return peers, nil
		}
		select {
		case <-ch:
		case <-again.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Peers returns the peers found so far, most recently seen first, without
// waiting or starting a round.
func (r *Rendezvous) Peers() []netip.AddrPort {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snapshotLocked()
}

// Changed returns a channel that is closed when a peer not seen before
// is found, or when the Rendezvous closes. Call it again for the next.
func (r *Rendezvous) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// Close stops the DHT node and every goroutine of this package and of the
// library, and saves the mainline contacts in StateDir. It waits at most
// a few seconds for the library; if the library wedged (see stopDHT), it
// returns an error and leaves those goroutines behind.
func (r *Rendezvous) Close() error {
	r.closeOnce.Do(func() { r.closeErr = r.close() })
	return r.closeErr
}

func (r *Rendezvous) close() error {
	r.cancel()
	// The round loop goes first: it is the only caller of the library's
	// request channels, which nobody reads once the library stops.
	r.roundsWG.Wait()
	stopErr := r.stopInstance(r.cur)
	probeErr := r.probe.Close()
	r.mu.Lock()
	r.closed = true
	close(r.changed)
	npeers := len(r.peers)
	r.mu.Unlock()
	saveErr := r.saveContacts(true)
	r.log.Info("mainline rendezvous stopped", "peers", npeers)
	return errors.Join(stopErr, probeErr, saveErr)
}
