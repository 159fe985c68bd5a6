package node

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/blockstore"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/atomicfile"
	"github.com/flowmail/flowmail/internal/clock"
	"github.com/flowmail/flowmail/kademlia"
	"github.com/flowmail/flowmail/rendezvous"
	"github.com/flowmail/flowmail/transport"
)

// Files under a node's data directory.
const (
	NodeKeyFile      = "node.key"
	StoreDir         = "store"
	SavedContactFile = "contacts.bin"
)

// Node is a running flowmail node.
type Node struct {
	cfg     Config
	clk     clock.Clock
	base    *slog.Logger // the node's records, before the component attribute
	log     *slog.Logger // the node's own records
	id      *identity.Identity
	store   blockstore.Store // nil in client mode
	tr      transport.Transport
	quic    *transport.QUIC // nil when Config.Transport was given
	dht     *kademlia.DHT
	m       *metrics
	admin   *adminServer
	adminLn net.Listener           // from Start's beginning until admin serves on it
	rz      *rendezvous.Rendezvous // nil when the mainline DHT is off
	relay   *onionRelay            // nil in client mode or with NoOnionRelay
	// onionClient receives the answers of this node's onion requests.
	onionClient atomic.Pointer[OnionNetwork]
	started     time.Time

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	errs   error
}

// Start opens the store, listens, joins the network through the bootstrap
// peers and saved contacts, and starts the background work. A full node
// with nobody to join is the first node of its network and waits for
// others; a client with nobody to join fails with ErrNoPeers.
func Start(ctx context.Context, cfg Config) (_ *Node, err error) {
	if cfg, err = cfg.WithDefaults(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, clk: cfg.Clock, m: newMetrics(), started: cfg.Clock.Now()}
	n.base, n.log = cfg.Logger, cfg.Logger.With("component", "node")
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if cfg.Admin != "" {
		if n.adminLn, err = listenAdmin(cfg.Admin); err != nil {
			return nil, err
		}
	}
	if n.id, err = n.loadIdentity(); err != nil {
		return nil, err
	}
	n.base = cfg.Logger.With("node", n.id.ID().Short())
	n.log = n.component("node")

	if !cfg.Client {
		if err := n.openStore(ctx); err != nil {
			return nil, err
		}
		if !cfg.NoOnionRelay {
			if n.relay, err = newOnionRelay(n); err != nil {
				return nil, err
			}
		}
	}

	// A full node that must check its reachability joins as a client
	// first, so it enters nobody's routing table before it knows peers
	// can reach it.
	probing := !cfg.Client && cfg.Reachability == ReachAuto && cfg.Transport == nil
	if err := n.openNetwork(ctx, cfg.Listen, cfg.Client || probing); err != nil {
		return nil, err
	}
	n.registerGauges()

	// A client node looks the network up without announcing itself: it
	// serves nobody. Short-lived clients (no DataDir) are given peers.
	if cfg.Mainline != nil && cfg.DataDir != "" {
		if err := n.startMainline(ctx); err != nil {
			return nil, err
		}
	}

	contacts := n.gatherContacts(ctx)
	if probing {
		if contacts, err = n.settleReachability(ctx, contacts); err != nil {
			return nil, err
		}
	}
	if err := n.join(ctx, contacts); err != nil {
		return nil, err
	}
	if n.adminLn != nil {
		n.admin, n.adminLn = serveAdmin(n.adminLn, n.m, n.Status), nil
	}

	bg, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.goLoop(bg, "refresh", jittered(n.cfg.RefreshInterval), n.dht.Refresh)
	if n.relay != nil {
		n.relay.start(bg)
	}
	if n.rz != nil {
		n.watchMainline(bg)
	}
	if !n.cfg.Client {
		// Republish handles only the blocks whose date has come, and the
		// liveness check only contacts a newcomer waits on: both are cheap
		// to call often, and calling often keeps their timing close.
		n.goLoop(bg, "republish", jittered(n.cfg.UpkeepInterval), func(ctx context.Context) error {
			_, err := n.dht.Republish(ctx)
			return err
		})
		n.goLoop(bg, "liveness", jittered(n.cfg.UpkeepInterval), func(ctx context.Context) error {
			n.dht.CheckLiveness(ctx)
			return nil
		})
		n.goLoop(bg, "pubkey", jittered(DefaultPubkeyInterval), n.publishPubkey)
		if cfg.DataDir != "" {
			n.goLoop(bg, "save contacts", constant(cfg.SaveInterval), func(context.Context) error { return n.saveContacts() })
		}
	}
	n.log.Info("node started", "id", n.id.ID().String(), "listen", n.tr.LocalAddr().String(), "client", n.cfg.Client, "peers", n.dht.Size())
	return n, nil
}

// component is the logger a part of the node logs through.
func (n *Node) component(name string) *slog.Logger { return n.base.With("component", name) }

// openStore opens the block store (in memory without a data directory)
// and pins the node's own pubkey block in it.
func (n *Node) openStore(ctx context.Context) error {
	scfg := blockstore.Config{Self: n.id.ID(), QuotaBytes: n.cfg.QuotaBytes, Clock: n.clk, Logger: n.component("blockstore"), Footprint: n.cfg.StoreFootprint}
	if n.cfg.DataDir == "" {
		n.store = blockstore.NewMemory(scfg)
	} else {
		dir := filepath.Join(n.cfg.DataDir, StoreDir)
		st, err := blockstore.OpenBadger(dir, scfg)
		if err != nil {
			if errors.Is(err, blockstore.ErrLocked) {
				return fmt.Errorf("%w: %s: %w", ErrStoreLocked, n.cfg.DataDir, err)
			}
			return fmt.Errorf("node: opening the block store: %w", err)
		}
		n.store = st
	}
	if _, err := n.store.Put(ctx, n.id.Public().Block, block.MaxLifetime, blockstore.PutOptions{Pinned: true, Sync: true}); err != nil {
		return fmt.Errorf("node: storing the own pubkey block: %w", err)
	}
	return nil
}

// openNetwork starts the transport (unless one was given) and the DHT,
// in client mode or not.
func (n *Node) openNetwork(ctx context.Context, listen string, client bool) error {
	n.tr = n.cfg.Transport
	if n.tr == nil {
		q, err := transport.ListenQUIC(ctx, transport.QUICConfig{
			Identity:   n.id,
			Network:    n.cfg.Network,
			ListenAddr: listen,
			PacketConn: n.cfg.PacketConn,
			Client:     client,
			Advertised: n.cfg.Advertise,
			Logger:     n.component("transport"),

			DialTimeout:      n.cfg.DialTimeout,
			HandshakeTimeout: n.cfg.HandshakeTimeout,
			RequestTimeout:   n.cfg.RequestTimeout,
		})
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("%w: %s: %w", ErrListenInUse, listen, err)
			}
			return fmt.Errorf("node: listening on %s: %w", listen, err)
		}
		n.quic, n.tr = q, q
	}
	var seed [16]byte
	_, _ = crand.Read(seed[:])
	kcfg := kademlia.Config{
		ID:                n.id.ID(),
		K:                 n.cfg.K,
		RequestTimeout:    n.cfg.RequestTimeout,
		StallTimeout:      n.cfg.StallTimeout,
		Transport:         instrumented{Transport: n.tr, m: n.m},
		Client:            client,
		Clock:             n.clk,
		Rand:              rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:]))),
		Logger:            n.component("kademlia"),
		RefreshInterval:   n.cfg.RefreshInterval,
		RepublishInterval: n.cfg.RepublishInterval,
	}
	if n.store != nil && !client {
		kcfg.Store = n.store
	}
	if n.cfg.NoIPLimits {
		kcfg.BucketIPLimit, kcfg.TableIPLimit = -1, -1
	}
	var err error
	if n.dht, err = kademlia.New(kcfg); err != nil {
		return err
	}
	if n.quic != nil {
		n.quic.SetHandler(n.m.instrumentHandler(n.Handle))
	}
	return nil
}

func (n *Node) loadIdentity() (*identity.Identity, error) {
	if n.cfg.Identity != nil {
		return n.cfg.Identity, nil
	}
	if n.cfg.Client || n.cfg.DataDir == "" {
		return identity.Generate(0, n.clk.Now())
	}
	path := filepath.Join(n.cfg.DataDir, NodeKeyFile)
	id, err := identity.ReadKeyFile(path, nil)
	if errors.Is(err, fs.ErrNotExist) {
		// The node key only names the node in the DHT; it protects no
		// mail, and a node must restart unattended, so no passphrase.
		if id, err = identity.Generate(0, n.clk.Now()); err != nil {
			return nil, err
		}
		if err = identity.WriteKeyFile(path, id, identity.KeyFileOptions{NoPassphrase: true}); err != nil {
			return nil, fmt.Errorf("node: writing %s: %w", path, err)
		}
		return id, nil
	}
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	return id, nil
}

// gatherContacts collects the ways in: bootstrap peers, the contacts saved
// at the last run, and, when there are none, the mainline rendezvous.
func (n *Node) gatherContacts(ctx context.Context) []transport.Contact {
	contacts := append([]transport.Contact(nil), n.cfg.Bootstrap...)
	contacts = append(contacts, n.savedContacts()...)
	if len(contacts) == 0 {
		contacts = n.mainlinePeers(ctx)
	}
	return contacts
}

// join bootstraps through contacts.
func (n *Node) join(ctx context.Context, contacts []transport.Contact) error {
	if len(contacts) == 0 {
		if n.cfg.Client {
			return ErrNoPeers
		}
		n.log.Info("no bootstrap peers: this node starts a new network and waits for others to join")
		return nil
	}
	if err := n.dht.Bootstrap(ctx, contacts); err != nil {
		if n.cfg.Client {
			return fmt.Errorf("%w through %d peers: %w", ErrJoin, len(contacts), err)
		}
		// A full node keeps running: peers that come up later find it.
		n.log.Warn("bootstrap failed; waiting for peers", "err", err)
	}
	if !n.cfg.Client {
		if err := n.publishPubkey(ctx); err != nil {
			n.log.Warn("publishing the node's pubkey block", "err", err)
		}
	}
	return nil
}

// publishPubkey stores the node's own pubkey block at the K closest, so
// it never expires from the network while the node runs.
func (n *Node) publishPubkey(ctx context.Context) error {
	if n.dht.Size() == 0 {
		return nil
	}
	return n.Put(ctx, n.id.Public().Block, block.MaxLifetime)
}

func (n *Node) savedContacts() []transport.Contact {
	if n.cfg.DataDir == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(n.cfg.DataDir, SavedContactFile))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			n.log.Warn("reading saved contacts", "err", err)
		}
		return nil
	}
	saved, err := kademlia.DecodeContacts(b)
	if err != nil {
		n.log.Warn("saved contacts unreadable; ignoring them", "err", err)
		return nil
	}
	out := make([]transport.Contact, len(saved))
	for i, s := range saved {
		out[i] = s.Contact
	}
	return out
}

func (n *Node) saveContacts() error {
	if n.cfg.DataDir == "" || n.dht == nil || n.dht.Size() == 0 {
		return nil
	}
	b, err := n.dht.SaveContacts()
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(n.cfg.DataDir, SavedContactFile), b, 0o600)
}

// schedule returns the wait before the next run of a loop.
type schedule func(r *rand.Rand) time.Duration

func constant(d time.Duration) schedule { return func(*rand.Rand) time.Duration { return d } }

// jittered spreads runs ±10% so nodes started together do not act in step.
func jittered(d time.Duration) schedule {
	return func(r *rand.Rand) time.Duration { return d - d/10 + time.Duration(r.Int64N(int64(d/5)+1)) }
}

// goLoop runs fn on a schedule until ctx ends; Close waits for it.
func (n *Node) goLoop(ctx context.Context, name string, next schedule, fn func(context.Context) error) {
	var seed [16]byte
	_, _ = crand.Read(seed[:])
	r := rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		t := n.clk.NewTimer(next(r))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				n.log.Warn(name+" failed", "err", err)
			}
			t.Reset(next(r))
		}
	}()
}

// Close stops the background work, saves the routing table, and closes
// the admin endpoint, the transport and the store, in that order.
func (n *Node) Close() error {
	n.once.Do(func() {
		if n.cancel != nil {
			n.cancel()
		}
		n.wg.Wait()
		if err := n.saveContacts(); err != nil {
			n.errs = errors.Join(n.errs, fmt.Errorf("saving contacts: %w", err))
		}
		if n.admin != nil {
			n.errs = errors.Join(n.errs, n.admin.close())
		}
		if n.adminLn != nil {
			n.errs = errors.Join(n.errs, n.adminLn.Close())
		}
		if n.rz != nil {
			n.errs = errors.Join(n.errs, n.rz.Close())
		}
		if n.quic != nil {
			n.errs = errors.Join(n.errs, n.quic.Close())
		}
		if n.store != nil {
			n.errs = errors.Join(n.errs, n.store.Close())
		}
	})
	return n.errs
}
