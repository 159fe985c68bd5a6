package main

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/flowmail/flowmail/naming"
	"github.com/flowmail/flowmail/node"
	"github.com/flowmail/flowmail/record"
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

// nameAdvice explains why name (alice@example.com) did not resolve, or
// why a send to it is held back.
func nameAdvice(err error, name string) error {
	_, domain, _ := strings.Cut(name, "@")
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errNoRecordDHT):
		return fmt.Errorf("%w: names cannot be published or resolved with it yet; send to the fm1… address instead", err)
	case errors.Is(err, naming.ErrNoRecord):
		return fmt.Errorf("%w: %s does not publish a flowmail record (_flowmail.%s TXT). Check the spelling; its owner runs `flowmail domain init`. To ask another DNS server: --dns-server IP[:PORT] or FLOWMAIL_DNS_SERVER", err, domain, domain)
	case errors.Is(err, naming.ErrConflict):
		return fmt.Errorf("%w: %s publishes two v=fm1 records and nobody can tell which is meant; its owner must keep exactly one", err, domain)
	case errors.Is(err, naming.ErrMalformed), errors.Is(err, naming.ErrVersion):
		return fmt.Errorf("%w: %s's record is not one this program reads; its owner checks it with `flowmail domain check %s`", err, domain, domain)
	case errors.Is(err, naming.ErrTimeout), errors.Is(err, naming.ErrNoResolver), errors.Is(err, naming.ErrDNS):
		return fmt.Errorf("%w: give a DNS server that answers with --dns-server IP[:PORT] (or FLOWMAIL_DNS_SERVER)", err)
	case errors.Is(err, naming.ErrNoCertificate):
		return fmt.Errorf("%w: %s has not certified %s, or the certificate has left the network; ask them (`flowmail domain sign`), or use the fm1… address", err, domain, name)
	case errors.Is(err, naming.ErrKeyNotListed):
		return fmt.Errorf("%w: the certificate is not signed by a key %s lists in DNS now; nothing is sent. Ask the person for their fm1… address by another channel", err, domain)
	case errors.Is(err, naming.ErrAmbiguous):
		return fmt.Errorf("%w: %s is in a key rollover with contradicting certificates; nothing is sent until its owner fixes them", err, domain)
	case errors.Is(err, record.ErrRevoked):
		return fmt.Errorf("%w: %s no longer binds %s; ask the person for their new address", err, domain, name)
	case errors.Is(err, record.ErrExpired), errors.Is(err, record.ErrNotYetValid):
		return fmt.Errorf("%w: %s's certificate of %s is out of its dates (or this machine's clock is off); its owner renews it with `flowmail domain sign`", err, domain, name)
	case errors.Is(err, record.ErrSignature), errors.Is(err, record.ErrWrongKey), errors.Is(err, record.ErrMismatch):
		return fmt.Errorf("%w: the certificate of %s does not check; nothing is sent", err, name)
	case errors.Is(err, record.ErrName):
		return fmt.Errorf("%w: a name is local@domain with an ASCII local part (letters, digits, . _ -)", err)
	case errors.Is(err, naming.ErrRebound):
		return fmt.Errorf("%w\nIf the person confirms the new address: flowmail names accept %s", err, name)
	case errors.Is(err, naming.ErrNoKeyLog):
		return fmt.Errorf("%w: the certified address has published no key; ask the person to run `flowmail publish`", err)
	}
	return err
}
