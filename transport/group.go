package transport

import (
	"fmt"
	"net/netip"
)

// A Group is the source a peer's address counts against for the limits
// per source (docs/PROTOCOL.md section 7): hosts likely under one
// operator share one.
type Group struct {
	Prefix netip.Prefix
	// Port is set when sockets of one host count apart: by default for
	// loopback, where a testnet runs every node on one address.
	Port uint16
}

func (g Group) String() string {
	if g.Port != 0 {
		return fmt.Sprintf("%v port %d", g.Prefix, g.Port)
	}
	return g.Prefix.String()
}

// IPGroup returns the prefix whose hosts are likely under one operator:
// /24 for IPv4 (and IPv4-mapped IPv6), /48 for IPv6. It is the zero
// prefix for an invalid address.
func IPGroup(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 48
	if a.Is4() {
		bits = 24
	}
	p, err := a.WithZone("").Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// DefaultGroup is the grouping a QUIC transport uses unless its config
// says otherwise: IPGroup for routable addresses, and each loopback
// socket (address and port) on its own, so that every node of a testnet
// on 127.0.0.1 is its own source.
func DefaultGroup(a netip.AddrPort) Group {
	ip := a.Addr().Unmap()
	if ip.IsLoopback() {
		return Group{Prefix: netip.PrefixFrom(ip.WithZone(""), ip.BitLen()), Port: a.Port()}
	}
	return Group{Prefix: IPGroup(ip)}
}

// GroupByPrefix groups every address by IPGroup, loopback too: with it,
// tests on loopback meet the limits per source as hosts on one /24 would.
func GroupByPrefix(a netip.AddrPort) Group {
	return Group{Prefix: IPGroup(a.Addr())}
}
