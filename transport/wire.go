package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/flowmail/flowmail/block"
)

// QUIC application error codes (docs/PROTOCOL.md, "Transport"), used both
// to close connections and to reset streams.
const (
	CodeNoError       = 0x00
	CodeFrameTooLarge = 0x01
	CodeMalformed     = 0x02
	CodeOverloaded    = 0x03
	CodeHandshake     = 0x10
	CodeWrongNetwork  = 0x11
	CodeShuttingDown  = 0x12
)

// MsgHello is the msg_type of the handshake message.
const MsgHello = 0x01

// FlagClient is HELLO flags bit 0: the sender runs in client mode.
const FlagClient = 0x01

// Errors of the HELLO and addr decoders. Test vectors name them by the
// text after "transport: ".
var (
	ErrMsgType     = errors.New("transport: unknown message type")
	ErrHelloFlags  = errors.New("transport: invalid flags")
	ErrNetworkName = errors.New("transport: bad network name")
	ErrAddrFamily  = errors.New("transport: bad address family")
	ErrAddrCount   = errors.New("transport: too many addresses")
	ErrTruncated   = errors.New("transport: truncated")
	ErrTrailing    = errors.New("transport: trailing bytes")
)

// Hello is the handshake message each side sends first.
type Hello struct {
	Client  bool
	Network string
	Pubkey  []byte // the sender's pubkey block, PubkeySize bytes; not verified by ParseHello
	Addrs   []netip.AddrPort
}

// checkNetworkName applies the HELLO rule for network names.
func checkNetworkName(name string) error {
	if len(name) == 0 || len(name) > MaxNetworkName {
		return fmt.Errorf("%w: %d bytes, want 1 to %d", ErrNetworkName, len(name), MaxNetworkName)
	}
	return nil
}

// Append appends the HELLO payload to dst, or says which field breaks the
// layout.
func (h *Hello) Append(dst []byte) ([]byte, error) {
	if err := checkNetworkName(h.Network); err != nil {
		return nil, err
	}
	if len(h.Pubkey) != block.PubkeySize {
		return nil, fmt.Errorf("%w: pubkey block of %d bytes, want %d", ErrTruncated, len(h.Pubkey), block.PubkeySize)
	}
	if len(h.Addrs) > MaxAdvertised {
		return nil, fmt.Errorf("%w: %d, at most %d", ErrAddrCount, len(h.Addrs), MaxAdvertised)
	}
	var flags byte
	if h.Client {
		flags |= FlagClient
	}
	dst = append(dst, MsgHello, flags, byte(len(h.Network)))
	dst = append(dst, h.Network...)
	dst = append(dst, h.Pubkey...)
	dst = append(dst, byte(len(h.Addrs)))
	for _, a := range h.Addrs {
		var err error
		if dst, err = AppendAddr(dst, a); err != nil {
			return nil, err
		}
	}
	return dst, nil
}

// ParseHello decodes a HELLO payload. It checks the layout only; the
// handshake verifies the pubkey block.
func ParseHello(b []byte) (Hello, error) {
	var h Hello
	if len(b) < 3 {
		return h, fmt.Errorf("%w: HELLO of %d bytes", ErrTruncated, len(b))
	}
	if b[0] != MsgHello {
		return h, fmt.Errorf("%w: %#x, want HELLO (%#x)", ErrMsgType, b[0], MsgHello)
	}
	if b[1]&^FlagClient != 0 {
		return h, fmt.Errorf("%w: %#x", ErrHelloFlags, b[1])
	}
	h.Client = b[1]&FlagClient != 0
	n := int(b[2])
	b = b[3:]
	if n == 0 || n > MaxNetworkName {
		return h, fmt.Errorf("%w: %d bytes, want 1 to %d", ErrNetworkName, n, MaxNetworkName)
	}
	if len(b) < n+block.PubkeySize+1 {
		return h, fmt.Errorf("%w: %d bytes left for network name, pubkey block and address count", ErrTruncated, len(b))
	}
	h.Network = string(b[:n])
	h.Pubkey = append([]byte(nil), b[n:n+block.PubkeySize]...)
	b = b[n+block.PubkeySize:]
	count := int(b[0])
	b = b[1:]
	if count > MaxAdvertised {
		return h, fmt.Errorf("%w: %d, at most %d", ErrAddrCount, count, MaxAdvertised)
	}
	h.Addrs = make([]netip.AddrPort, 0, count)
	for range count {
		a, rest, err := ParseAddr(b)
		if err != nil {
			return h, err
		}
		h.Addrs = append(h.Addrs, a)
		b = rest
	}
	if len(b) != 0 {
		return h, fmt.Errorf("%w: %d after HELLO", ErrTrailing, len(b))
	}
	return h, nil
}

// AppendAddr appends the wire form of a (family u8 || ip || port u16).
// IPv4-mapped IPv6 addresses keep family 6, so decoding gives back a.
func AppendAddr(dst []byte, a netip.AddrPort) ([]byte, error) {
	ip := a.Addr()
	switch {
	case !ip.IsValid():
		return nil, fmt.Errorf("%w: invalid address", ErrAddrFamily)
	case ip.Zone() != "":
		return nil, fmt.Errorf("%w: address %v has a zone", ErrAddrFamily, ip)
	case ip.Is4():
		b := ip.As4()
		dst = append(dst, 4)
		dst = append(dst, b[:]...)
	default:
		b := ip.As16()
		dst = append(dst, 6)
		dst = append(dst, b[:]...)
	}
	return binary.BigEndian.AppendUint16(dst, a.Port()), nil
}

// ParseAddr decodes one addr from the front of b and returns the rest.
func ParseAddr(b []byte) (netip.AddrPort, []byte, error) {
	if len(b) < 1 {
		return netip.AddrPort{}, nil, fmt.Errorf("%w: address family missing", ErrTruncated)
	}
	var size int
	switch b[0] {
	case 4:
		size = 4
	case 6:
		size = 16
	default:
		return netip.AddrPort{}, nil, fmt.Errorf("%w: %d", ErrAddrFamily, b[0])
	}
	if len(b) < 1+size+2 {
		return netip.AddrPort{}, nil, fmt.Errorf("%w: IPv%d address needs %d bytes, %d left", ErrTruncated, b[0], size+2, len(b)-1)
	}
	ip, _ := netip.AddrFromSlice(b[1 : 1+size])
	port := binary.BigEndian.Uint16(b[1+size:])
	return netip.AddrPortFrom(ip, port), b[1+size+2:], nil
}
