package main

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/flowmail/flowmail/node"
	"github.com/flowmail/flowmail/testnet"
	"github.com/flowmail/flowmail/transport"
)

// The libraries return typed errors that say what went wrong; this file
// is the one place that turns them into the next step for the user,
// naming the flags of this program.

// configFlags names the flag behind each node.Config field a ConfigError
// can name.
var configFlags = map[string]string{
	"Listen":        "--listen",
	"Admin":         "--admin",
	"DataDir":       "--data-dir",
	"QuotaBytes":    "--quota",
	"Reachability":  "--reachability",
	"Mainline.Port": "--mainline-port",
	"Network":       "--network",
}

// nodeAdvice explains an error of starting a node (`flowmail node`, or
// the client of send, fetch and publish).
func nodeAdvice(err error) error {
	var ce *node.ConfigError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce) && configFlags[ce.Field] != "":
		return fmt.Errorf("%s %q: %s", configFlags[ce.Field], ce.Value, ce.Reason)
	case errors.Is(err, node.ErrStoreLocked):
		return fmt.Errorf("%w: is another flowmail node running on it? Stop it, or give this one its own --data-dir", err)
	case errors.Is(err, node.ErrListenInUse):
		return fmt.Errorf("%w: another program, perhaps another node, has that port: pick another with --listen", err)
	case errors.Is(err, node.ErrAdminInUse):
		return fmt.Errorf("%w: is another node running here? Pass --admin 127.0.0.1:PORT, or --admin '' to turn it off", err)
	case errors.Is(err, node.ErrMainline):
		return fmt.Errorf("%w (turn it off with --no-mainline)", err)
	case errors.Is(err, node.ErrNoAdmin):
		return fmt.Errorf("%w: is `flowmail node` running? Give its admin address with --admin or FLOWMAIL_ADMIN", err)
	}
	return err
}

// joinAdvice explains why a client could not join through plan.
func joinAdvice(err error, plan joinPlan) error {
	switch {
	case errors.Is(err, transport.ErrWrongNetwork):
		// The transport's text is the peer's view ("peer is on X, we are
		// on Y"); the user needs theirs.
		return fmt.Errorf("you are joining network %q, but the peers from %s are on another one: give theirs with --network NAME (a testnet's name is in its directory's %q file; a node's is in `flowmail node status`)",
			plan.network, plan.source, testnet.NetworkFileName)
	case errors.Is(err, node.ErrNoPeers):
		return fmt.Errorf("%w: give --bootstrap IP:port, or --testnet DIR", err)
	case errors.Is(err, node.ErrJoin):
		return fmt.Errorf("joining through %s: %w (are those nodes running?)", plan.source, err)
	}
	return fmt.Errorf("joining through %s: %w", plan.source, nodeAdvice(err))
}

// testnetAdvice explains an error of starting a testnet.
func testnetAdvice(err error) error {
	switch {
	case errors.Is(err, fs.ErrPermission), errors.Is(err, fs.ErrExist):
		return fmt.Errorf("%w: pick another directory with --dir", err)
	case errors.Is(err, testnet.ErrInvalidConfig):
		return fmt.Errorf("%w (see flowmail testnet --help)", err)
	}
	return nodeAdvice(err)
}
