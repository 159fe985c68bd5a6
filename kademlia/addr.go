package kademlia

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrAddrClass is wrapped by CheckPeerAddr for an address no peer can be
// reached at.
var ErrAddrClass = errors.New("kademlia: address cannot be a peer's")

// refusedPrefixes are the address classes of docs/PROTOCOL.md section 8
// that no peer can be reached at, whatever the path (loopback is decided
// apart). IPv4-mapped IPv6 addresses are checked as IPv4.
var refusedPrefixes = []struct {
	prefix netip.Prefix
	class  string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "\"this network\" (0.0.0.0/8)"},
	{netip.MustParsePrefix("169.254.0.0/16"), "IPv4 link-local"},
	{netip.MustParsePrefix("224.0.0.0/4"), "IPv4 multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "IPv4 reserved or broadcast (240.0.0.0/4)"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible or unspecified IPv6 (::/96)"},
	{netip.MustParsePrefix("fe80::/10"), "IPv6 link-local"},
	{netip.MustParsePrefix("fec0::/10"), "IPv6 site-local (deprecated)"},
	{netip.MustParsePrefix("ff00::/8"), "IPv6 multicast"},
}

// loopback4Ends are the network and broadcast addresses of 127.0.0.0/8,
// which no node listens on, loopback or not.
var loopback4Ends = []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 0}), netip.AddrFrom4([4]byte{127, 255, 255, 255})}

// CheckPeerAddr returns nil when a can be a peer's address: a unicast IP
// without a zone and a port other than 0, outside every refused class of
// docs/PROTOCOL.md section 8. A loopback address (127.0.0.0/8, ::1) is a
// peer's only over loopback: onLoopback says whether the address was
// learned over a loopback path (the packets of the peer that named it,
// or of the peer itself, came from a loopback address). NODES entries,
// routing-table entries and the addresses a HELLO advertises are all
// checked with it.
func CheckPeerAddr(a netip.AddrPort, onLoopback bool) error {
	ip := a.Addr().Unmap()
	switch {
	case !ip.IsValid():
		return fmt.Errorf("%w: no address", ErrAddrClass)
	case a.Port() == 0:
		return fmt.Errorf("%w: %v has port 0", ErrAddrClass, a)
	case ip.Zone() != "":
		return fmt.Errorf("%w: %v carries a zone", ErrAddrClass, a)
	case ip == netip.IPv6Loopback():
		// ::1 lies inside ::/96; it is loopback.
	case ip.Is4() && (ip == loopback4Ends[0] || ip == loopback4Ends[1]):
		return fmt.Errorf("%w: %v is the network or broadcast address of 127.0.0.0/8", ErrAddrClass, a)
	}
	if ip.IsLoopback() {
		if !onLoopback {
			return fmt.Errorf("%w: %v is loopback, learned off loopback", ErrAddrClass, a)
		}
		return nil
	}
	for _, r := range refusedPrefixes {
		if r.prefix.Contains(ip) {
			return fmt.Errorf("%w: %v is %s", ErrAddrClass, a, r.class)
		}
	}
	return nil
}

// isLoopback reports whether packets from a come over loopback.
func isLoopback(a netip.AddrPort) bool { return a.Addr().Unmap().IsLoopback() }

// usableAddr reports whether a contact learned over a path ending at via
// (the answering peer's address) can be dialled.
func usableAddr(a, via netip.AddrPort) bool { return CheckPeerAddr(a, isLoopback(via)) == nil }
