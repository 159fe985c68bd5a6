package transport

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrAddrUnusable: an address no peer can be reached at (docs/PROTOCOL.md
// section 7, "Peer addresses"). A HELLO is accepted without it.
var ErrAddrUnusable = errors.New("transport: unusable address")

var (
	thisNetwork4  = netip.MustParsePrefix("0.0.0.0/8")
	linkLocal4    = netip.MustParsePrefix("169.254.0.0/16")
	linkLocal6    = netip.MustParsePrefix("fe80::/10")
	broadcast4    = netip.AddrFrom4([4]byte{255, 255, 255, 255})
	multicastNets = []netip.Prefix{netip.MustParsePrefix("224.0.0.0/4"), netip.MustParsePrefix("ff00::/8")}
)

// CheckPeerAddr says whether a can be a peer's address: a port other
// than 0 and an IP (IPv4-mapped IPv6 judged as its IPv4 address) that is
// not unspecified, in 0.0.0.0/8, link-local (169.254.0.0/16,
// fe80::/10), multicast or the IPv4 broadcast address, has no zone, and
// is not loopback unless loopbackOK (a node whose own socket is on
// loopback). The error wraps ErrAddrUnusable.
func CheckPeerAddr(a netip.AddrPort, loopbackOK bool) error {
	ip := a.Addr()
	if !ip.IsValid() {
		return fmt.Errorf("%w: invalid address", ErrAddrUnusable)
	}
	if ip.Zone() != "" {
		return fmt.Errorf("%w: %v has a zone", ErrAddrUnusable, a)
	}
	ip = ip.Unmap()
	var why string
	switch {
	case a.Port() == 0:
		why = "port 0"
	case ip.IsUnspecified() || thisNetwork4.Contains(ip):
		why = "an unspecified address"
	case linkLocal4.Contains(ip) || linkLocal6.Contains(ip):
		why = "link-local"
	case multicastNets[0].Contains(ip) || multicastNets[1].Contains(ip):
		why = "multicast"
	case ip == broadcast4:
		why = "the broadcast address"
	case ip.IsLoopback() && !loopbackOK:
		why = "loopback"
	default:
		return nil
	}
	return fmt.Errorf("%w: %v is %s", ErrAddrUnusable, a, why)
}
