package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/flowmail/flowmail/internal/atomicfile"
	"github.com/flowmail/flowmail/node"
	"github.com/flowmail/flowmail/transport"
)

const (
	configFileName = "config.toml"
	defaultAdmin   = "127.0.0.1:9180"
	defaultListen  = "0.0.0.0:4410"
)

// nodeFlags can each be set on the command line, by environment variable,
// or in the config file under the same name (in that order of precedence).
func nodeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "TOML config file; keys are these flags' names (default: <home>/config.toml if present)", EnvVars: []string{"FLOWMAIL_CONFIG"}},
		altsrc.NewStringFlag(&cli.StringFlag{Name: "listen", Value: defaultListen, Usage: "UDP address for QUIC", EnvVars: []string{"FLOWMAIL_LISTEN"}}),
		altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: "bootstrap", Usage: "peer to join through, IP:port or NODEID@IP:port (repeatable)", EnvVars: []string{"FLOWMAIL_BOOTSTRAP"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "data-dir", Usage: "node key, block store and saved peers (default: <home>/node)", EnvVars: []string{"FLOWMAIL_DATA_DIR"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "network", Value: node.DefaultNetwork, Usage: "network name", EnvVars: []string{"FLOWMAIL_NETWORK"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "quota", Value: "10GiB", Usage: "most bytes of blocks to keep for others (0: no limit)", EnvVars: []string{"FLOWMAIL_QUOTA"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "admin", Value: defaultAdmin, Usage: "loopback address for /metrics and /status (empty: off)", EnvVars: []string{"FLOWMAIL_ADMIN"}}),
		altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: "advertise", Usage: "IP:port others can reach this node at, if not its listen address (repeatable)", EnvVars: []string{"FLOWMAIL_ADVERTISE"}}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "client", Usage: "run in client mode: store nothing for others", EnvVars: []string{"FLOWMAIL_CLIENT"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "reachability", Value: "auto", Usage: "auto: check that peers can reach this node, else run as a client; public: trust --listen/--advertise", EnvVars: []string{"FLOWMAIL_REACHABILITY"}}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "no-onion-relay", Usage: "do not relay onion packets for clients (a full node relays by default)", EnvVars: []string{"FLOWMAIL_NO_ONION_RELAY"}}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "no-mainline", Usage: "do not look for peers in the BitTorrent mainline DHT", EnvVars: []string{"FLOWMAIL_NO_MAINLINE"}}),
		altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: "mainline-router", Usage: "mainline DHT router host:port (default: the public routers; repeatable)", EnvVars: []string{"FLOWMAIL_MAINLINE_ROUTER"}}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "request-timeout", Usage: fmt.Sprintf("how long to wait for a peer to connect and answer one request, and the most spent answering one (default %s; dials %s)", transport.DefaultRequestTimeout, transport.DefaultDialTimeout), EnvVars: []string{"FLOWMAIL_REQUEST_TIMEOUT"}}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "mainline-port", Usage: "UDP port of the mainline DHT (0: any free port; never the QUIC port)", EnvVars: []string{"FLOWMAIL_MAINLINE_PORT"}}),
	}
}

// loadConfig applies the config file to the flags not set otherwise. An
// explicit --config must exist; the default one may be missing.
func loadConfig(flags []cli.Flag) cli.BeforeFunc {
	return func(c *cli.Context) error {
		path, explicit := c.String("config"), true
		if path == "" {
			path, explicit = filepath.Join(c.String("home"), configFileName), false
		}
		if _, err := os.Stat(path); err != nil {
			if !explicit && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("config file: %w", err)
		}
		// The file also holds the clients' onion settings (send, fetch).
		if err := checkConfigKeys(path, flags, c.App.Flags, onionFlags()); err != nil {
			return err
		}
		src, err := altsrc.NewTomlSourceFromFile(path)
		if err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
		if err := altsrc.ApplyInputSourceValues(c, src, flags); err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
		return applyGlobalSettings(c, path)
	}
}

// applyGlobalSettings applies the global flags the config file sets
// (log level and format) where neither the command line nor the
// environment set them: the documented order. (altsrc, given the app's
// context, overrode the command line.) The values are checked as the
// flags' are.
func applyGlobalSettings(c *cli.Context, path string) error {
	settings, err := readConfigFile(path)
	if err != nil {
		return err
	}
	for _, name := range []string{"log-level", "log-format"} {
		v, ok := settings[name]
		if !ok || c.IsSet(name) {
			continue
		}
		str, ok := v.(string)
		if !ok {
			return fmt.Errorf("config file %s: %s = %v: want a string", path, name, v)
		}
		if err := c.Set(name, str); err != nil {
			return fmt.Errorf("config file %s: %s: %w", path, name, err)
		}
	}
	if _, err := loggerOptions(c); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// checkConfigKeys refuses a config file with a setting that is no flag:
// a misspelt key would otherwise be ignored, and the node would run with
// a default the operator meant to change (say, listening everywhere).
func checkConfigKeys(path string, flagSets ...[]cli.Flag) error {
	settings, err := readConfigFile(path)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, flags := range flagSets {
		for _, f := range flags {
			for _, name := range f.Names() {
				known[name] = true
			}
		}
	}
	delete(known, "config")
	delete(known, "home") // where the config file itself is found
	for key := range settings {
		if !known[key] {
			return fmt.Errorf("config file %s: unknown setting %q: settings are the flags of `flowmail node --help` without the dashes (see contrib/config.example.toml)", path, key)
		}
	}
	return nil
}

func nodeCommand(s *streams) *cli.Command {
	flags := nodeFlags()
	return &cli.Command{
		Name:  "node",
		Usage: "run a storage node until interrupted",
		Description: "A node stores encrypted blocks for the network and answers lookups. It runs until\n" +
			"SIGINT or SIGTERM, then saves its peers and shuts down cleanly. A restarted node\n" +
			"rejoins through the peers it saved, without a bootstrap list.\n\n" +
			"Metrics (Prometheus) and status are served on --admin, on this machine only.",
		Flags:  flags,
		Before: loadConfig(flags),
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return unknownCommand(c)
			}
			return runNode(c, s)
		},
		Subcommands: []*cli.Command{{
			Name:  "status",
			Usage: "show a running node's peers, storage and uptime",
			Description: "status asks the node's admin endpoint: --admin when given, else the admin address\n" +
				"of the config file (--config, FLOWMAIL_CONFIG or <home>/config.toml), the address a\n" +
				"running node wrote into its data directory, and " + defaultAdmin + ".",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "admin", Usage: "the node's --admin address", EnvVars: []string{"FLOWMAIL_ADMIN"}},
				&cli.StringFlag{Name: "config", Usage: "the node's config file, to find its admin address", EnvVars: []string{"FLOWMAIL_CONFIG"}},
			},
			Action: func(c *cli.Context) error {
				config := c.String("config")
				if config == "" {
					config = c.Lineage()[1].String("config") // flowmail node --config X status
				}
				st, err := findLocalNode(c.Context, adminCandidates(c, config))
				if err != nil {
					return nodeAdvice(err)
				}
				printStatus(s, st)
				return nil
			},
		}},
	}
}

func runNode(c *cli.Context, s *streams) error {
	ctx := c.Context
	log, err := newLogger(c, s.err)
	if err != nil {
		return err
	}
	cfg, err := nodeConfig(c, log)
	if err != nil {
		return err
	}
	n, err := node.Start(ctx, cfg)
	if err != nil {
		return startAdvice(err)
	}
	fmt.Fprintf(s.out, "node %s listening on %s (network %q, %d peers)\n", n.ID().Short(), n.Addr(), c.String("network"), n.DHT().Size())
	// A domain owner's node keeps the certificates it issued alive.
	stopCerts := startCertRepublisher(ctx, c.String("home"), n, log, nil)
	return serveUntilDone(ctx, s, log, n, cfg.DataDir, func() error {
		stopCerts()
		return n.Close()
	})
}

// startAdvice turns the errors of starting a node into advice.
func startAdvice(err error) error {
	if errors.Is(err, node.ErrNoPeers) {
		return fmt.Errorf("%w: give --bootstrap IP:port (or FLOWMAIL_BOOTSTRAP, or bootstrap in the config file), or leave the mainline DHT on (no --no-mainline)", err)
	}
	return nodeAdvice(err)
}

// nodeConfig builds a node's config from the flags of nodeFlags.
func nodeConfig(c *cli.Context, log *slog.Logger) (node.Config, error) {
	dataDir := c.String("data-dir")
	if dataDir == "" {
		dataDir = filepath.Join(c.String("home"), "node")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return node.Config{}, fmt.Errorf("%w: choose a data directory you can write with --data-dir or --home", err)
	}
	quota, err := parseQuota(c.String("quota"))
	if err != nil {
		return node.Config{}, err
	}
	var boot []transport.Contact
	for _, b := range c.StringSlice("bootstrap") {
		for _, part := range strings.FieldsFunc(b, func(r rune) bool { return r == ',' || r == ' ' }) {
			ct, err := node.ParseContact(part)
			if err != nil {
				return node.Config{}, err
			}
			boot = append(boot, ct)
		}
	}
	var adv []netip.AddrPort
	for _, a := range c.StringSlice("advertise") {
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			return node.Config{}, fmt.Errorf("--advertise %q: want IP:port", a)
		}
		adv = append(adv, ap)
	}
	reach, err := node.ParseReachability(c.String("reachability"))
	if err != nil {
		return node.Config{}, err
	}
	var mainline *node.MainlineConfig
	if !c.Bool("no-mainline") {
		mainline = &node.MainlineConfig{Routers: c.StringSlice("mainline-router"), Port: c.Int("mainline-port")}
	}
	cfg := node.Config{
		Mainline:     mainline,
		Reachability: reach,
		DataDir:      dataDir,
		Network:      c.String("network"),
		Listen:       c.String("listen"),
		Bootstrap:    boot,
		Client:       c.Bool("client"),
		Advertise:    adv,
		QuotaBytes:   quota,
		Admin:        c.String("admin"),
		Logger:       log,
		NoIPLimits:   isLoopbackListen(c.String("listen")),
		NoOnionRelay: c.Bool("no-onion-relay"),
	}
	setRequestTimeout(&cfg, c.Duration("request-timeout"))
	return cfg, nil
}

// serveUntilDone tells clients and the operator where the admin endpoint
// of n is, waits for ctx to end, and stops with stop.
func serveUntilDone(ctx context.Context, s *streams, log *slog.Logger, n *node.Node, dataDir string, stop func() error) error {
	adminFile := filepath.Join(dataDir, adminFileName)
	if a := n.AdminAddr(); a != "" {
		// send, fetch and node status find the node through it,
		// whatever --admin said. Written before the line below, which
		// tells the operator (and tests) that the node is ready.
		if err := atomicfile.Write(adminFile, []byte(a+"\n"), 0o644); err != nil {
			log.Warn("writing the admin address for clients", "file", adminFile, "err", err)
		}
		fmt.Fprintf(s.out, "metrics at http://%s/metrics, status: flowmail node status --admin %s\n", a, a)
	}
	<-ctx.Done()
	fmt.Fprintln(s.out, "shutting down")
	if err := os.Remove(adminFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		log.Warn("removing the admin address file", "file", adminFile, "err", err)
	}
	return stop()
}

func isLoopbackListen(s string) bool {
	ap, err := netip.ParseAddrPort(s)
	return err == nil && ap.Addr().IsLoopback()
}

func parseQuota(s string) (int64, error) {
	if s == "" || s == "0" {
		return 0, nil
	}
	b, err := humanize.ParseBytes(s)
	if err != nil || b > 1<<62 {
		return 0, fmt.Errorf("--quota %q: want a size such as 500MB or 10GiB", s)
	}
	return int64(b), nil
}

func printStatus(s *streams, st *node.Status) {
	mode := "full node"
	if st.Client {
		mode = "client"
	}
	fmt.Fprintf(s.out, "node     %s (%s)\nnetwork  %s\nlisten   %s\nuptime   %s (since %s)\n",
		st.ID, mode, st.Network, st.Listen, st.Uptime.Round(time.Second), st.Started.Local().Format(time.RFC3339))
	if len(st.Observed) > 0 {
		fmt.Fprintf(s.out, "seen as  %s\n", strings.Join(st.Observed, ", "))
	}
	if st.Store != nil {
		quota := "no quota"
		if st.Store.QuotaBytes > 0 {
			quota = "of " + humanize.IBytes(uint64(st.Store.QuotaBytes))
		}
		fmt.Fprintf(s.out, "storage  %d blocks, %s %s (%d evicted, %d expired)\n",
			st.Store.Blocks, humanize.IBytes(uint64(st.Store.Bytes)), quota, st.Store.Evicted, st.Store.Expired)
	}
	fmt.Fprintf(s.out, "peers    %d\n", len(st.Peers))
	sort.Slice(st.Peers, func(i, j int) bool { return st.Peers[i].Bucket > st.Peers[j].Bucket })
	w := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  ID\tADDRESS\tBUCKET\tLAST SEEN\tFAILURES")
	for _, p := range st.Peers {
		id := p.ID
		if len(id) > 16 {
			id = id[:16]
		}
		fmt.Fprintf(w, "  %s\t%s\t%d\t%s ago\t%d\n", id, p.Addr, p.Bucket, time.Since(p.LastSeen).Round(time.Second), p.Failures)
	}
	w.Flush()
}
