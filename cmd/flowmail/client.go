package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/kademlia"
	"github.com/flowmail/flowmail/node"
	"github.com/flowmail/flowmail/testnet"
	"github.com/flowmail/flowmail/transport"
)

// networkFlags say how a short-lived client finds the network. Each app
// gets its own: a flag remembers having been set.
func networkFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{
			Name:    "bootstrap",
			Usage:   "peer to join through, IP:port or NODEID@IP:port (repeatable)",
			EnvVars: []string{"FLOWMAIL_BOOTSTRAP"},
		},
		&cli.StringFlag{
			Name:    "testnet",
			Usage:   "join the local testnet started by flowmail testnet --dir `DIR`",
			EnvVars: []string{"FLOWMAIL_TESTNET"},
		},
		&cli.StringFlag{
			Name:    "network",
			Usage:   "network name (default: flowmail, or the testnet's)",
			EnvVars: []string{"FLOWMAIL_NETWORK"},
		},
		requestTimeoutFlag(),
		&cli.StringFlag{
			Name: "admin",
			Usage: "admin address of a `flowmail node` on this machine to join through (default: the one its config " +
				"or its data directory names, else " + defaultAdmin + "; empty: do not look for one)",
			EnvVars: []string{"FLOWMAIL_ADMIN"},
		},
	}
}

// requestTimeoutFlag bounds each request to a peer and each connection
// to one. Shared by the clients and the testnet command.
func requestTimeoutFlag() cli.Flag {
	return &cli.DurationFlag{
		Name:    "request-timeout",
		Usage:   fmt.Sprintf("how long to wait for a peer to connect and answer one request (default %s, dials %s; raise it on a slow machine or link)", transport.DefaultRequestTimeout, transport.DefaultDialTimeout),
		EnvVars: []string{"FLOWMAIL_REQUEST_TIMEOUT"},
	}
}

// setRequestTimeout gives every per-peer timeout of c the value of
// --request-timeout (0 leaves the defaults).
func setRequestTimeout(c *node.Config, d time.Duration) {
	c.DialTimeout, c.HandshakeTimeout, c.RequestTimeout = d, d, d
}

// defaultTestnetDir is where `flowmail testnet` runs without --dir, and
// where send and fetch look for a running testnet when told nothing else.
// It is per user: another user's testnet is never joined by accident.
func defaultTestnetDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "flowmail-testnet")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("flowmail-testnet-%d", os.Getuid()))
}

// joinPlan is where a client goes: peers and network name.
type joinPlan struct {
	network string
	peers   []transport.Contact
	source  string // for messages: which setting gave the peers
	// loopback: every peer is a local testnet's, so the client binds
	// 127.0.0.1 and is seen by nobody else.
	loopback bool
	// implicit: found without being named (a local node, the default
	// testnet), so the user is told where the mail goes.
	implicit bool
	// k is the testnet's replication factor (0: the default).
	k int
}

// setOnCommandLine tells a flag given on the command line from one that
// only took its environment variable's value: the command line wins.
func setOnCommandLine(c *cli.Context, name, env string) bool {
	if !c.IsSet(name) {
		return false
	}
	v, ok := os.LookupEnv(env)
	if !ok {
		return true
	}
	switch f := c.Value(name).(type) {
	case cli.StringSlice:
		return strings.Join(f.Value(), ",") != v
	case string:
		return f != v
	}
	return true
}

// planJoin picks the peers of a short-lived client, from the most to the
// least explicit: --bootstrap or --testnet on the command line, then the
// same from the environment, then a node running on this machine, then
// the user's own testnet in its default directory.
func planJoin(c *cli.Context) (joinPlan, error) {
	p := joinPlan{network: c.String("network")}
	bootCLI, testnetCLI := setOnCommandLine(c, "bootstrap", "FLOWMAIL_BOOTSTRAP"), setOnCommandLine(c, "testnet", "FLOWMAIL_TESTNET")
	useBoot, useTestnet := c.IsSet("bootstrap"), c.IsSet("testnet")
	switch {
	case bootCLI && testnetCLI:
		return p, errors.New("give --bootstrap or --testnet, not both")
	case bootCLI:
		useTestnet = false
	case testnetCLI:
		useBoot = false
	case useBoot && useTestnet:
		return p, errors.New("FLOWMAIL_BOOTSTRAP and FLOWMAIL_TESTNET are both set: unset one, or say which to use with --bootstrap or --testnet")
	}
	if useBoot {
		for _, s := range c.StringSlice("bootstrap") {
			for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
				ct, err := node.ParseContact(part)
				if err != nil {
					return p, fmt.Errorf("--bootstrap: %w", err)
				}
				p.peers = append(p.peers, ct)
			}
		}
		if len(p.peers) == 0 {
			return p, errors.New("--bootstrap is empty: give IP:port of a node")
		}
		p.source = "--bootstrap"
		if p.network == "" {
			p.network = node.DefaultNetwork
		}
		return p, nil
	}
	if useTestnet {
		return planTestnet(p, c.String("testnet"))
	}
	// A node running on this machine is the best way in.
	if st, err := findLocalNode(c.Context, adminCandidates(c, "")); err == nil {
		if ct, err := node.ParseContact(st.ID + "@" + loopbackOf(st.Listen)); err == nil {
			p.peers, p.source, p.implicit = []transport.Contact{ct}, "the local node at "+st.Listen, true
			if p.network == "" {
				p.network = st.Network
			}
			return p, nil
		}
	} else if c.IsSet("admin") && c.String("admin") != "" {
		return p, nodeAdvice(err) // named, so meant: not passed over
	}
	dir := defaultTestnetDir()
	if err := ownedByMe(dir); err == nil {
		if plan, err := planTestnet(p, dir); err == nil {
			plan.implicit = true
			return plan, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return p, err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return p, err
	}
	return p, errors.New("no network to join: run `flowmail node` on this machine, give --bootstrap IP:port (or FLOWMAIL_BOOTSTRAP), or start a local network with `flowmail testnet` and pass --testnet DIR")
}

func planTestnet(p joinPlan, dir string) (joinPlan, error) {
	peers, network, err := readTestnet(dir)
	if err != nil {
		return p, err
	}
	if p.k, err = readTestnetK(dir); err != nil {
		return p, err
	}
	p.peers, p.source, p.loopback = peers, "the testnet in "+dir, true
	if p.network == "" {
		p.network = network
	}
	for _, ct := range peers {
		p.loopback = p.loopback && ct.Addr.Addr().IsLoopback()
	}
	return p, nil
}

// adminFileName is the file in a node's data directory that holds the
// address its admin endpoint listens on, while it runs: clients find a
// node started with any --admin through it.
const adminFileName = "admin-address"

// adminCandidates lists where a node on this machine may answer, most
// explicit first: --admin (or FLOWMAIL_ADMIN) alone when given; else the
// admin address of the config file (configPath, FLOWMAIL_CONFIG, or
// <home>/config.toml), the address a running node wrote into its data
// directory (the config's data-dir, or <home>/node), and the default.
func adminCandidates(c *cli.Context, configPath string) []string {
	if c.IsSet("admin") {
		if a := c.String("admin"); a != "" {
			return []string{a}
		}
		return nil // "" turns the search off
	}
	if configPath == "" {
		configPath = os.Getenv("FLOWMAIL_CONFIG")
	}
	if configPath == "" {
		configPath = filepath.Join(c.String("home"), configFileName)
	}
	var out []string
	dataDir := filepath.Join(c.String("home"), "node")
	if settings, err := readConfigFile(configPath); err == nil {
		if a, ok := settings["admin"].(string); ok && a != "" {
			out = append(out, a)
		}
		if d, ok := settings["data-dir"].(string); ok && d != "" {
			dataDir = d
		}
	}
	if b, err := readSmallFile(filepath.Join(dataDir, adminFileName), 256); err == nil {
		out = append(out, strings.TrimSpace(string(b)))
	}
	return append(out, defaultAdmin)
}

// findLocalNode asks each admin address in turn for the node's status
// and returns the first answer. Nobody listening answers at once
// (connection refused): the bound on each ask is for a node that hangs,
// and generous, for one that is only busy.
func findLocalNode(ctx context.Context, admins []string) (*node.Status, error) {
	err := error(node.ErrNoAdmin)
	seen := map[string]bool{}
	for _, a := range admins {
		if seen[a] {
			continue
		}
		seen[a] = true
		actx, cancel := context.WithTimeout(ctx, time.Minute)
		st, e := node.FetchStatus(actx, a)
		cancel()
		if e == nil {
			return st, nil
		}
		err = e
	}
	return nil, err
}

// loopbackOf turns a node's listen address into one this machine can dial:
// a node listening on every interface is reached on 127.0.0.1, which a
// socket bound to [::] (Go's dual-stack wildcard) answers too.
func loopbackOf(listen string) string {
	ap, err := netip.ParseAddrPort(listen)
	if err != nil || !ap.Addr().IsUnspecified() {
		return listen
	}
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ap.Port()).String()
}

// readTestnet reads the bootstrap and network files a testnet writes.
func readTestnet(dir string) ([]transport.Contact, string, error) {
	peers, err := node.ReadBootstrapFile(filepath.Join(dir, testnet.BootstrapFileName))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, "", fmt.Errorf("no testnet in %s (start one with `flowmail testnet --dir %s`): %w", dir, dir, err)
		}
		return nil, "", err
	}
	name, err := readSmallFile(filepath.Join(dir, testnet.NetworkFileName), 1<<10)
	if err != nil {
		return nil, "", fmt.Errorf("testnet in %s: %w", dir, err)
	}
	return peers, strings.TrimSpace(string(name)), nil
}

// readTestnetK reads the K a testnet's nodes use; 0 when the testnet
// wrote none (one started by an older flowmail: the default).
func readTestnetK(dir string) (int, error) {
	b, err := readSmallFile(filepath.Join(dir, testnet.ReplicationFileName), 16)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("testnet in %s: %w", dir, err)
	}
	k, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || k < 1 || k > kademlia.K {
		return 0, fmt.Errorf("testnet in %s: %s holds %q, want a K from 1 to %d", dir, testnet.ReplicationFileName, strings.TrimSpace(string(b)), kademlia.K)
	}
	return k, nil
}

// startClient starts a client-mode node with a throwaway node identity.
func startClient(ctx context.Context, c *cli.Context, s *streams) (*node.Node, error) {
	plan, err := planJoin(c)
	if err != nil {
		return nil, err
	}
	log, err := newLogger(c, s.err)
	if err != nil {
		return nil, err
	}
	// Joining is a ping and a lookup or two: a few request times.
	timeout := c.Duration("request-timeout")
	ctx, cancel := context.WithTimeout(ctx, 3*cmp.Or(timeout, transport.DefaultRequestTimeout))
	defer cancel()
	cfg := node.Config{
		Network:    plan.network,
		Listen:     listenFor(plan),
		Bootstrap:  plan.peers,
		Client:     true,
		Logger:     log,
		NoIPLimits: true,
		K:          plan.k,
	}
	setRequestTimeout(&cfg, timeout)
	n, err := node.Start(ctx, cfg)
	if err != nil {
		log.Debug("joining failed", "via", plan.source, "err", err)
		return nil, joinAdvice(err, plan)
	}
	if plan.implicit {
		fmt.Fprintf(s.err, "using %s (network %q)\n", plan.source, plan.network)
	}
	return n, nil
}

// listenFor binds a local testnet's client to loopback, and any other
// client to every interface (both families: Go's wildcard socket is
// dual-stack), since the peers it meets may be anywhere.
func listenFor(p joinPlan) string {
	if p.loopback {
		return "127.0.0.1:0"
	}
	return "0.0.0.0:0"
}

// publishOwnPubkey stores the user's pubkey block in the network, so
// senders can look the address up; owners re-store it before it expires.
func publishOwnPubkey(ctx context.Context, n delivery.Network, id *identity.Identity) error {
	if err := n.Put(ctx, id.Public().Block, block.MaxLifetime); err != nil {
		return fmt.Errorf("publishing your pubkey block: %w", err)
	}
	return nil
}

func publishCommand(s *streams) *cli.Command {
	return &cli.Command{
		Name:  "publish",
		Usage: "store your pubkey block and key log in the network so others can write to you",
		Description: "send and fetch publish it too; publish is for a new address that has not\n" +
			"fetched yet. The network keeps it 30 days; any fetch renews it.",
		Flags: append(append(append([]cli.Flag{}, networkFlags()...), passphraseFlags()...), onionFlags()...),
		Action: func(c *cli.Context) error {
			id, err := loadIdentity(c, s)
			if err != nil {
				return err
			}
			n, err := startClient(c.Context, c, s)
			if err != nil {
				return err
			}
			defer n.Close()
			net, release, _, err := networkFor(c, n, s.err)
			if err != nil {
				return onionAdvice(err)
			}
			defer release()
			if err := publishOwnKeys(c.Context, c, net, id); err != nil {
				return onionAdvice(err)
			}
			fmt.Fprintf(s.out, "published %s\n", id.Address())
			return nil
		},
	}
}
