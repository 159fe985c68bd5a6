package node

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/flowmail/flowmail/transport"
)

// Reachability is how a full node decides whether others can reach it.
type Reachability uint8

const (
	// ReachAuto: after joining, compare the addresses peers saw this node
	// at (their PONG replies) with the addresses it listens and
	// advertises on; if none match, peers could not dial it back (NAT,
	// firewall), so it runs as a client instead of sitting in routing
	// tables where every lookup would time out on it.
	ReachAuto Reachability = iota
	// ReachPublic: the operator vouches that the node is reachable (a
	// forwarded port, say); no check.
	ReachPublic
)

// ParseReachability parses "auto" or "public".
func ParseReachability(s string) (Reachability, error) {
	switch strings.ToLower(s) {
	case "", "auto":
		return ReachAuto, nil
	case "public":
		return ReachPublic, nil
	}
	return 0, &ConfigError{Field: "Reachability", Value: s, Reason: "want auto or public"}
}

// reachableAt reports whether an address peers observed is one this node
// can be dialled at: its own listen address (or, listening on every
// interface, one of its interface addresses at the listen port), or an
// advertised address.
func reachableAt(observed, listen netip.AddrPort, advertised []netip.AddrPort, local []netip.Addr) bool {
	for _, a := range advertised {
		if a == observed {
			return true
		}
	}
	if observed.Port() != listen.Port() {
		return false // the port was rewritten on the way: NAT
	}
	if !listen.Addr().IsUnspecified() {
		return observed.Addr().Unmap() == listen.Addr().Unmap()
	}
	for _, l := range local {
		if l.Unmap() == observed.Addr().Unmap() {
			return true
		}
	}
	return false
}

// settleReachability joins through contacts in client mode, compares the
// addresses peers saw the node at with those it can be reached at, and
// reopens the node as a full node if they match. With nobody to ask (the
// first node of a network) it cannot tell and serves as a full node.
func (n *Node) settleReachability(ctx context.Context, contacts []transport.Contact) ([]transport.Contact, error) {
	if len(contacts) > 0 {
		if err := n.dht.Bootstrap(ctx, contacts); err != nil {
			n.log.Warn("joining to check reachability", "err", err)
		}
	}
	observed := n.dht.ObservedAddrs()
	if len(observed) > 0 {
		local, err := n.localAddrs()
		if err != nil {
			n.log.Warn("listing local addresses", "err", err)
		}
		listen := n.tr.LocalAddr()
		var seen []string
		reachable := false
		for _, o := range observed {
			if reachableAt(o.Addr, listen, n.cfg.Advertise, local) {
				reachable = true
				break
			}
			seen = append(seen, o.Addr.String())
		}
		if !reachable {
			n.log.Warn("peers see this node at an address it does not listen on, so they cannot reach it: running as a client. "+
				"To store blocks for others, forward the UDP port and advertise the public address (or set reachability to public).",
				"listen", listen.String(), "seen_as", strings.Join(seen, ","))
			n.cfg.Client = true
			if n.rz != nil {
				if err := n.rz.Close(); err != nil {
					n.log.Warn("stopping the mainline rendezvous", "err", err)
				}
				n.rz = nil
			}
			return contacts, nil
		}
	}
	found, err := n.reopen(ctx, false)
	return append(contacts, found...), err
}

func (n *Node) localAddrs() ([]netip.Addr, error) {
	if n.cfg.LocalAddrs != nil {
		return n.cfg.LocalAddrs()
	}
	ifas, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range ifas {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr())
		}
	}
	return out, nil
}

// reopen closes the transport and the DHT and opens them again on the
// same UDP port, in client mode or not, and returns the contacts found so
// far, for the next join.
func (n *Node) reopen(ctx context.Context, client bool) ([]transport.Contact, error) {
	var found []transport.Contact
	for _, c := range n.dht.Contacts() {
		found = append(found, c.Contact)
	}
	listen := n.tr.LocalAddr().String()
	if err := n.quic.Close(); err != nil {
		return nil, fmt.Errorf("node: closing the transport to reopen it: %w", err)
	}
	n.quic = nil
	return found, n.openNetwork(ctx, listen, client)
}
