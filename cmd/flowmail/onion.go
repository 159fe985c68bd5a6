package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/naming"
	"github.com/flowmail/flowmail/node"
	"github.com/flowmail/flowmail/onion"
)

// onionGuardFile is the file in the home directory that keeps the
// client's guard between runs (docs/PROTOCOL.md 14.10).
const onionGuardFile = "onion-guard"

// onionFlags turn on onion routing for a client's stores, lists and
// fetches. The config file (<home>/config.toml) may set both keys too.
func onionFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "onion", Usage: "send stores, lists and fetches through three relays, so the nodes near an address never see your IP address (config: onion = true)", EnvVars: []string{"FLOWMAIL_ONION"}},
		&cli.DurationFlag{Name: "onion-delay", Usage: fmt.Sprintf("mean delay at each relay with --onion (default %s for stores, %s for lists and fetches; 0: none)", node.DefaultOnionPutDelay, node.DefaultOnionDelay), EnvVars: []string{"FLOWMAIL_ONION_DELAY"}},
	}
}

// onionSettings reads --onion and --onion-delay, falling back on the
// config file's onion and onion-delay keys.
func onionSettings(c *cli.Context) (on bool, opt node.OnionOptions, err error) {
	opt = node.OnionOptions{Delay: node.DefaultOnionDelay, PutDelay: node.DefaultOnionPutDelay}
	path := os.Getenv("FLOWMAIL_CONFIG")
	if path == "" {
		path = filepath.Join(c.String("home"), configFileName)
	}
	settings, ferr := readConfigFile(path)
	if ferr != nil && !errors.Is(ferr, os.ErrNotExist) {
		return false, opt, ferr
	}
	on = c.Bool("onion")
	if !c.IsSet("onion") {
		if v, ok := settings["onion"]; ok {
			b, isBool := v.(bool)
			if !isBool {
				return false, opt, fmt.Errorf("config file %s: onion = %v: want true or false", path, v)
			}
			on = b
		}
	}
	delay, set := c.Duration("onion-delay"), c.IsSet("onion-delay")
	if v, ok := settings["onion-delay"]; ok && !set {
		str, isStr := v.(string)
		if d, perr := time.ParseDuration(str); isStr && perr == nil {
			delay, set = d, true
		} else {
			return false, opt, fmt.Errorf("config file %s: onion-delay = %v: want a duration such as \"30s\"", path, v)
		}
	}
	if set {
		if delay < 0 {
			return false, opt, fmt.Errorf("--onion-delay %s: want 0 (no delays) or more", delay)
		}
		opt.Delay, opt.PutDelay = delay, delay
	}
	opt.GuardFile = filepath.Join(c.String("home"), onionGuardFile)
	return on, opt, nil
}

// networkFor returns what a client's delivery goes through: the node
// itself, or, with --onion, its onion-routed view, with progress lines
// on w. The returned function releases it.
func networkFor(c *cli.Context, n *node.Node, w io.Writer) (delivery.Network, func(), bool, error) {
	on, opt, err := onionSettings(c)
	if err != nil || !on {
		return n, func() {}, false, err
	}
	if err := os.MkdirAll(c.String("home"), 0o700); err != nil {
		return nil, nil, false, err
	}
	var mu sync.Mutex // requests run at once and report from their goroutines
	opt.Progress = func(p node.OnionProgress) {
		mu.Lock()
		defer mu.Unlock()
		if p.Answered {
			fmt.Fprintf(w, "onion: %s %s answered through the reply path\n", p.Op, p.Target.Short())
			return
		}
		fmt.Fprintf(w, "onion: %s %s taken by the first relay (hop %d of %d)\n", p.Op, p.Target.Short(), p.Hop, onion.Hops)
	}
	o, err := n.Onion(c.Context, opt)
	if err != nil {
		return nil, nil, false, err
	}
	fmt.Fprintf(w, "onion: routing through 3 relays, guard %s; mean delay per hop %s for stores, %s for lists and fetches\n", o.Guard().ID().Short(), opt.PutDelay, opt.Delay)
	return o, o.Close, true, nil
}

// keyLogsFor is where a command reads key logs: through exits when net
// is onion-routed (section 14.9's RECORD), else the DHT directly.
func keyLogsFor(n *node.Node, net delivery.Network) delivery.KeyLogs {
	if o, ok := net.(*node.OnionNetwork); ok {
		return o
	}
	return n.DHT()
}

// routeNames makes r read name certificates and key logs through exits
// when net is onion-routed.
func routeNames(r *naming.Resolver, net delivery.Network) {
	if o, ok := net.(*node.OnionNetwork); ok && r != nil {
		r.DHT = nameDHT{o}
	}
}

// onionAdvice explains an onion routing error, naming the flags; other
// errors pass unchanged. send, fetch and publish return through it.
func onionAdvice(err error) error {
	switch {
	case errors.Is(err, node.ErrNoRelays):
		return fmt.Errorf("%w: --onion needs at least 3 relays with distinct /16 addresses, away from the nodes that store the mail; join a larger network (--bootstrap, or a local `flowmail node`), or send without --onion (and without onion = true in the config file)", err)
	case errors.Is(err, node.ErrOnionTimeout):
		return fmt.Errorf("%w: no answer came back through 3 paths; retry, raise --request-timeout on a slow link, or lower --onion-delay", err)
	}
	return err
}
