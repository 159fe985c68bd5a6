package rendezvous

import (
	"errors"
	"fmt"
	"net/netip"
)

// compactPeerLen is the BEP 5 "compact IP-address/port info" of an IPv4
// peer: ip [4] || port u16.
const compactPeerLen = 6

// Rules a peer entry from the DHT must follow; the error names are the
// names used in testdata/vectors/rendezvous_peer.json.
var (
	ErrPeerLength      = errors.New("rendezvous: peer_length")
	ErrPeerPortZero    = errors.New("rendezvous: peer_port_zero")
	ErrPeerUnspecified = errors.New("rendezvous: peer_ip_unspecified")
	ErrPeerMulticast   = errors.New("rendezvous: peer_ip_multicast")
	ErrPeerBroadcast   = errors.New("rendezvous: peer_ip_broadcast")
)

// ParseCompactPeer decodes one peer entry of a get_peers "values" list.
// It accepts only 6-byte IPv4 entries naming a unicast address and a
// non-zero port; anything else could never be a flowmail node to dial.
func ParseCompactPeer(b []byte) (netip.AddrPort, error) {
	if len(b) != compactPeerLen {
		return netip.AddrPort{}, fmt.Errorf("%w: %d bytes, want %d", ErrPeerLength, len(b), compactPeerLen)
	}
	ip := netip.AddrFrom4([4]byte(b[:4]))
	port := uint16(b[4])<<8 | uint16(b[5])
	switch {
	case port == 0:
		return netip.AddrPort{}, fmt.Errorf("%w: %v", ErrPeerPortZero, ip)
	case ip.IsUnspecified():
		return netip.AddrPort{}, fmt.Errorf("%w: port %d", ErrPeerUnspecified, port)
	case ip.IsMulticast():
		return netip.AddrPort{}, fmt.Errorf("%w: %v", ErrPeerMulticast, ip)
	case ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return netip.AddrPort{}, fmt.Errorf("%w: port %d", ErrPeerBroadcast, port)
	}
	return netip.AddrPortFrom(ip, port), nil
}

// AppendCompactPeer appends the 6-byte compact form of an IPv4 peer.
func AppendCompactPeer(dst []byte, p netip.AddrPort) []byte {
	ip := p.Addr().As4()
	return append(dst, ip[0], ip[1], ip[2], ip[3], byte(p.Port()>>8), byte(p.Port()))
}
