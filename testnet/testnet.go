package testnet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/flowmail/flowmail/blockstore"
	"github.com/flowmail/flowmail/internal/atomicfile"
	"github.com/flowmail/flowmail/internal/clock"
	"github.com/flowmail/flowmail/kademlia"
	"github.com/flowmail/flowmail/node"
	"github.com/flowmail/flowmail/transport"
)

// BootstrapFileName is the file in a testnet directory that lists its
// nodes, one "ID@IP:port" per line; `send`/`fetch --testnet DIR` read it.
const BootstrapFileName = "bootstrap.txt"

// NetworkFileName holds the testnet's network name.
const NetworkFileName = "network"

// ReplicationFileName holds the testnet's K (decimal), which clients
// joining with --testnet use too: on a small network a client with the
// default K would count every node among the K closest to any target,
// and find no onion relay clear of them (docs/PROTOCOL.md 14.10).
const ReplicationFileName = "replication"

// Config describes a local network.
type Config struct {
	// Nodes is how many full nodes to start (at least 1).
	Nodes int
	// Dir holds one data directory per node and the bootstrap file.
	Dir string
	// Network is the network name; empty means a name unique to Dir, so
	// a testnet never talks to the public network by accident.
	Network string
	// Logger receives the nodes' records (nil: discard).
	Logger *slog.Logger
	// Tune, when set, adjusts each node's config before it starts.
	Tune func(i int, c *node.Config)
	// Progress, when set, is told each time a node is up; never by two
	// goroutines at once.
	Progress func(started, total int)
	// TuneClient, when set, adjusts the config of clients made by Client.
	TuneClient func(c *node.Config)
	// SingleSeed makes every node bootstrap from node 0 only, instead of
	// from every node already up.
	SingleSeed bool
	// K is the replication factor and bucket size of every node and
	// client (0: kademlia.K). Tests of small networks lower it, so that
	// nodes exist beyond the K closest to a target (onion relays).
	K int
	// Clock is shared by every node and client of the network, and by
	// their DHTs and stores (nil: clock.Real). A test gives a
	// *clock.Offset and advances it to make a day pass for all of them.
	Clock clock.Clock
}

// Errors of Start and Restart.
var (
	ErrInvalidConfig = errors.New("testnet: invalid configuration")
	ErrRunning       = errors.New("testnet: the node is running")
)

// Net is a running local network.
type Net struct {
	cfg Config

	mu    sync.Mutex
	nodes []*node.Node // nil where a node is stopped

	restartMu sync.Mutex // one Restart at a time: check and start as one step

	progressMu sync.Mutex // Progress is called from the starting goroutines, one at a time
}

// Start brings up cfg.Nodes full nodes on 127.0.0.1: the first alone,
// then the others in parallel batches, each bootstrapping from the nodes
// already up. It writes the bootstrap file once every node is up.
func Start(ctx context.Context, cfg Config) (_ *Net, err error) {
	if cfg.Nodes < 1 {
		return nil, fmt.Errorf("%w: %d nodes, want at least 1", ErrInvalidConfig, cfg.Nodes)
	}
	if cfg.Dir == "" {
		return nil, fmt.Errorf("%w: no directory", ErrInvalidConfig)
	}
	if cfg.Network == "" {
		abs, err := filepath.Abs(cfg.Dir)
		if err != nil {
			return nil, fmt.Errorf("testnet: %w", err)
		}
		cfg.Network = NetworkName(abs)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Clock = clock.Or(cfg.Clock)
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	// A testnet started again on its directory gets new ports: the
	// contacts its nodes saved last time are all dead, and waiting them
	// out costs seconds per node. Fresh nodes join through each other.
	for i := range cfg.Nodes {
		if err := os.Remove(filepath.Join(cfg.Dir, fmt.Sprintf("node-%02d", i), node.SavedContactFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("testnet: %w", err)
		}
	}
	n := &Net{cfg: cfg, nodes: make([]*node.Node, cfg.Nodes)}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if err := n.start(ctx, 0, nil); err != nil {
		return nil, err
	}
	n.progress()
	// Batches of growing size: every node finds a few already-joined
	// peers, and the whole network comes up in a logarithmic number of
	// rounds rather than one node at a time.
	for next := 1; next < cfg.Nodes; {
		boot := n.Contacts()
		if cfg.SingleSeed {
			boot = boot[:1]
		}
		batch := min(max(len(n.Running()), 1)*2, cfg.Nodes-next, 16)
		var wg sync.WaitGroup
		errs := make([]error, batch)
		for j := range batch {
			wg.Add(1)
			go func(i, j int) {
				defer wg.Done()
				errs[j] = n.start(ctx, i, boot)
				n.progress()
			}(next+j, j)
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		next += batch
	}
	if err := n.WriteBootstrapFile(); err != nil {
		return nil, err
	}
	return n, nil
}

// NetworkName derives the network name of a testnet from its directory.
func NetworkName(dir string) string {
	h := fmt.Sprintf("%08x", fnv32(dir))
	return "testnet-" + h
}

func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// NodeDir is the data directory of node i.
func (n *Net) NodeDir(i int) string { return filepath.Join(n.cfg.Dir, fmt.Sprintf("node-%02d", i)) }

// Network is the network name.
func (n *Net) Network() string { return n.cfg.Network }

// Dir is the testnet directory.
func (n *Net) Dir() string { return n.cfg.Dir }

func (n *Net) start(ctx context.Context, i int, boot []transport.Contact) error {
	c := node.Config{
		DataDir:    n.NodeDir(i),
		Network:    n.cfg.Network,
		Listen:     "127.0.0.1:0",
		Bootstrap:  boot,
		Logger:     n.cfg.Logger.With("testnet_node", i),
		NoIPLimits: true,
		Clock:      n.cfg.Clock,
		// Every peer is on this machine: nothing stands between them.
		Reachability: node.ReachPublic,
		// Many stores share this process.
		StoreFootprint: blockstore.FootprintShared,
		K:              n.cfg.K,
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return err
	}
	if n.cfg.Tune != nil {
		n.cfg.Tune(i, &c)
	}
	nd, err := node.Start(ctx, c)
	if err != nil {
		return fmt.Errorf("testnet: node %d: %w", i, err)
	}
	n.mu.Lock()
	n.nodes[i] = nd
	n.mu.Unlock()
	return nil
}

func (n *Net) progress() {
	if n.cfg.Progress == nil {
		return
	}
	n.progressMu.Lock()
	defer n.progressMu.Unlock()
	n.cfg.Progress(len(n.Running()), n.cfg.Nodes)
}

// Node returns node i, or nil if it is stopped.
func (n *Net) Node(i int) *node.Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nodes[i]
}

// Running returns the nodes that are up.
func (n *Net) Running() []*node.Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []*node.Node
	for _, nd := range n.nodes {
		if nd != nil {
			out = append(out, nd)
		}
	}
	return out
}

// Contacts returns how to reach every running node.
func (n *Net) Contacts() []transport.Contact {
	var out []transport.Contact
	for _, nd := range n.Running() {
		out = append(out, nd.Contact())
	}
	return out
}

// WriteBootstrapFile lists the running nodes in Dir/bootstrap.txt and
// the network name in Dir/network.
func (n *Net) WriteBootstrapFile() error {
	if err := atomicfile.Write(filepath.Join(n.cfg.Dir, NetworkFileName), []byte(n.cfg.Network+"\n"), 0o644); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(n.cfg.Dir, ReplicationFileName), []byte(strconv.Itoa(cmp.Or(n.cfg.K, kademlia.K))+"\n"), 0o644); err != nil {
		return err
	}
	return node.WriteBootstrapFile(filepath.Join(n.cfg.Dir, BootstrapFileName), n.Contacts(),
		fmt.Sprintf("flowmail testnet %q, %d nodes, written %s\nuse: flowmail send --testnet %s ...", n.cfg.Network, len(n.Running()), n.cfg.Clock.Now().UTC().Format(time.RFC3339), n.cfg.Dir))
}

// Stop stops node i (its data directory stays, so Restart brings it back).
func (n *Net) Stop(i int) error {
	n.mu.Lock()
	nd := n.nodes[i]
	n.nodes[i] = nil
	n.mu.Unlock()
	if nd == nil {
		return nil
	}
	return nd.Close()
}

// Restart starts node i again on its data directory with no bootstrap
// list: it rejoins through the contacts it saved when it stopped.
func (n *Net) Restart(ctx context.Context, i int) error {
	n.restartMu.Lock()
	defer n.restartMu.Unlock()
	if n.Node(i) != nil {
		return fmt.Errorf("%w: node %d", ErrRunning, i)
	}
	return n.start(ctx, i, nil)
}

// Client starts a client-mode node that joins this network, for sending
// and fetching. The caller closes it.
func (n *Net) Client(ctx context.Context) (*node.Node, error) {
	c := node.Config{
		Network:    n.cfg.Network,
		Listen:     "127.0.0.1:0",
		Bootstrap:  n.Contacts(),
		Client:     true,
		Logger:     n.cfg.Logger.With("testnet_client", true),
		NoIPLimits: true,
		Clock:      n.cfg.Clock,
		K:          n.cfg.K,
	}
	if n.cfg.TuneClient != nil {
		n.cfg.TuneClient(&c)
	}
	return node.Start(ctx, c)
}

// Close stops every node and removes the bootstrap file, so that clients
// looking for a running testnet do not wait on dead peers.
func (n *Net) Close() error {
	if err := os.Remove(filepath.Join(n.cfg.Dir, BootstrapFileName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		n.cfg.Logger.Warn("testnet: removing the bootstrap file", "err", err)
	}
	n.mu.Lock()
	nodes := n.nodes
	n.nodes = make([]*node.Node, len(nodes))
	n.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, nd := range nodes {
		if nd == nil {
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = nd.Close() }()
	}
	wg.Wait()
	return errors.Join(errs...)
}
