package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/node"
	"github.com/flowmail/flowmail/testnet"
	"github.com/flowmail/flowmail/transport"
)

// networkFlags say how a short-lived client finds the network.
var networkFlags = []cli.Flag{
	&cli.StringSliceFlag{
		Name:    "bootstrap",
		Usage:   "peer to join through, IP:port or NODEID@IP:port (repeatable)",
		EnvVars: []string{"FLOWMAIL_BOOTSTRAP"},
	},
	&cli.StringFlag{
		Name:    "testnet",
		Usage:   "join the local testnet started by `flowmail testnet --dir DIR`",
		EnvVars: []string{"FLOWMAIL_TESTNET"},
	},
	&cli.StringFlag{
		Name:    "network",
		Usage:   "network name (default: flowmail, or the testnet's)",
		EnvVars: []string{"FLOWMAIL_NETWORK"},
	},
}

// defaultTestnetDir is where `flowmail testnet` runs without --dir, and
// where send and fetch look for a running testnet when told nothing else.
func defaultTestnetDir() string { return filepath.Join(os.TempDir(), "flowmail-testnet") }

// joinPlan is where a client goes: peers and network name.
type joinPlan struct {
	network string
	peers   []transport.Contact
	source  string // for messages: which setting gave the peers
}

func planJoin(c *cli.Context) (joinPlan, error) {
	p := joinPlan{network: c.String("network")}
	for _, s := range c.StringSlice("bootstrap") {
		for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
			ct, err := node.ParseContact(part)
			if err != nil {
				return p, err
			}
			p.peers = append(p.peers, ct)
		}
	}
	if len(p.peers) > 0 {
		p.source = "--bootstrap"
		if p.network == "" {
			p.network = node.DefaultNetwork
		}
		return p, nil
	}
	dir, explicit := c.String("testnet"), true
	if dir == "" {
		dir, explicit = defaultTestnetDir(), false
	}
	peers, network, err := readTestnet(dir)
	switch {
	case err == nil:
		p.peers, p.source = peers, "the testnet in "+dir
		if p.network == "" {
			p.network = network
		}
		return p, nil
	case explicit:
		return p, err
	case !errors.Is(err, fs.ErrNotExist):
		return p, err
	}
	// A node running on this machine is the best way in.
	ctx, cancel := context.WithTimeout(c.Context, 2*time.Second)
	defer cancel()
	if st, err := node.FetchStatus(ctx, defaultAdmin); err == nil {
		if ct, err := node.ParseContact(st.ID + "@" + loopbackOf(st.Listen)); err == nil {
			p.peers, p.source = []transport.Contact{ct}, "the local node at "+st.Listen
			if p.network == "" {
				p.network = st.Network
			}
			return p, nil
		}
	}
	return p, errors.New("no network to join: run `flowmail node` on this machine, give --bootstrap IP:port (or FLOWMAIL_BOOTSTRAP), or start a local network with `flowmail testnet` and pass --testnet DIR")
}

// loopbackOf turns a node's listen address into one this machine can dial:
// a node listening on every interface is reached on loopback.
func loopbackOf(listen string) string {
	ap, err := netip.ParseAddrPort(listen)
	if err != nil || !ap.Addr().IsUnspecified() {
		return listen
	}
	if ap.Addr().Is4() {
		return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ap.Port()).String()
	}
	return netip.AddrPortFrom(netip.IPv6Loopback(), ap.Port()).String()
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
	name, err := os.ReadFile(filepath.Join(dir, testnet.NetworkFileName))
	if err != nil {
		return nil, "", fmt.Errorf("testnet in %s: %w", dir, err)
	}
	return peers, strings.TrimSpace(string(name)), nil
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
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	n, err := node.Start(ctx, node.Config{
		Network:    plan.network,
		Listen:     listenFor(plan.peers),
		Bootstrap:  plan.peers,
		Client:     true,
		Logger:     log,
		NoIPLimits: true,
	})
	if err != nil {
		return nil, fmt.Errorf("joining through %s: %w", plan.source, err)
	}
	return n, nil
}

// listenFor picks a loopback socket when every peer is on loopback (a
// local testnet), and all interfaces otherwise.
func listenFor(peers []transport.Contact) string {
	for _, p := range peers {
		if !p.Addr.Addr().IsLoopback() {
			if p.Addr.Addr().Is6() && !p.Addr.Addr().Is4In6() {
				return "[::]:0"
			}
			return "0.0.0.0:0"
		}
	}
	return "127.0.0.1:0"
}

// publishOwnPubkey stores the user's pubkey block in the network, so
// senders can look the address up; owners re-store it before it expires.
func publishOwnPubkey(ctx context.Context, n *node.Node, id *identity.Identity) error {
	if err := n.Put(ctx, id.Public().Block, block.MaxLifetime); err != nil {
		return fmt.Errorf("publishing your pubkey block: %w", err)
	}
	return nil
}

func publishCommand(s *streams) *cli.Command {
	return &cli.Command{
		Name:  "publish",
		Usage: "store your pubkey block in the network so others can write to you",
		Description: "send and fetch publish it too; publish is for a new address that has not\n" +
			"fetched yet. The network keeps it 30 days; any fetch renews it.",
		Flags: append(append([]cli.Flag{}, networkFlags...), passphraseFlags...),
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
			if err := publishOwnPubkey(c.Context, n, id); err != nil {
				return err
			}
			fmt.Fprintf(s.out, "published %s\n", id.Address())
			return nil
		},
	}
}
