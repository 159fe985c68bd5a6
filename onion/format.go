package onion

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/flowmail/flowmail/block"
)

// Sizes of the packet format (docs/PROTOCOL.md section 14.2). Every relay
// packet is exactly PacketSize bytes, whatever it carries.
const (
	// Version is the first byte of every packet.
	Version = 1

	// Hops is the number of relays on every path, and of slots in a
	// header.
	Hops = 3

	// EncSize is an MLKEM768-X25519 encapsulation: ML-KEM-768 ciphertext
	// (1088) || X25519 share (32).
	EncSize = 1120
	// CommandSize is a layer's routing command in the clear.
	CommandSize = 64
	// TagSize is a ChaCha20-Poly1305 tag.
	TagSize = 16
	// SealedCommandSize is a command with its tag.
	SealedCommandSize = CommandSize + TagSize
	// StampSize is a work stamp: relay [8] || nonce [8].
	StampSize = 16
	// SlotSize is one hop's part of the header.
	SlotSize = EncSize + SealedCommandSize + StampSize
	// HeaderSize is Hops slots.
	HeaderSize = Hops * SlotSize

	// PacketSize is the one size of every relay packet on the wire.
	PacketSize = 32768
	// PayloadSize is what follows the header.
	PayloadSize = PacketSize - 1 - HeaderSize
	// BodySize is the plaintext of an exit request or a reply: the payload
	// less the end-to-end AEAD tag.
	BodySize = PayloadSize - TagSize

	// headerOffset is where the header starts in a packet.
	headerOffset = 1
	// payloadOffset is where the payload starts in a packet.
	payloadOffset = headerOffset + HeaderSize
	// Offsets inside a slot.
	encOffset    = 0
	sealedOffset = EncSize
	stampOffset  = EncSize + SealedCommandSize
)

// MsgOnion is the message type of a packet between nodes (section 14.11,
// numbered with section 8's messages): the body is the packet.
const MsgOnion = 0x20

// Protocol rules a relay enforces (section 11 and 14).
const (
	// MinStampWork is the least work (leading zero bits of the stamp
	// hash) any relay accepts.
	MinStampWork = 12

	// MaxHopDelay bounds the delay a command may ask a relay to hold a
	// packet for, so that a request and its replies fit in one epoch
	// window (2·Hops·MaxHopDelay <= Epoch).
	MaxHopDelay = 10 * time.Minute

	// Epoch is the period a packet's epoch number counts; relays accept
	// the previous, the current and the next one.
	Epoch = time.Hour
)

// Labels of the onion format (section 14.1).
const (
	labelLayer = "flowmail/v1 onion"       // HPKE info of every layer
	labelKeys  = "flowmail/v1 onion keys"  // HPKE export of a layer's symmetric keys
	labelStamp = "flowmail/v1 onion stamp" // work stamp hash
)

// Errors of packets a relay or client drops, one per counted reason.
var (
	ErrPacketSize   = errors.New("onion: packet is not PacketSize bytes")
	ErrVersion      = errors.New("onion: unknown packet version")
	ErrStampRelay   = errors.New("onion: stamp bound to another relay")
	ErrStampWork    = errors.New("onion: stamp carries too little work")
	ErrOutbid       = errors.New("onion: queue full of packets with more work")
	ErrLayerMAC     = errors.New("onion: layer does not authenticate")
	ErrCommand      = errors.New("onion: malformed command")
	ErrDelay        = errors.New("onion: delay above MaxHopDelay")
	ErrEpoch        = errors.New("onion: epoch outside the window")
	ErrReplay       = errors.New("onion: replayed packet")
	ErrReplyReused  = errors.New("onion: reply block used twice")
	ErrReplayFull   = errors.New("onion: replay cache full for the epoch")
	ErrHoldFull     = errors.New("onion: held packets full of packets with more work")
	ErrExitMAC      = errors.New("onion: exit body does not authenticate")
	ErrExitBody     = errors.New("onion: malformed exit body")
	ErrReplyBody    = errors.New("onion: malformed reply body")
	ErrUnknownReply = errors.New("onion: reply to no pending reply block")
	ErrReplyMAC     = errors.New("onion: reply does not authenticate")
	ErrSURB         = errors.New("onion: malformed reply block")
	ErrNoSURB       = errors.New("onion: reply blocks exhausted")
	ErrSourceFull   = errors.New("onion: too many queued packets of one source")
)

// CommandType says what a relay does with a layer.
type CommandType uint8

// Command types.
const (
	// Forward: send the peeled packet to the next node after the delay.
	Forward CommandType = 1
	// Exit: open the payload as an exit body and execute it.
	Exit CommandType = 2
)

// Command is one layer's routing instruction, sealed to its relay.
type Command struct {
	Type  CommandType
	Epoch uint32        // hours since 1970 when the packet was made
	Delay time.Duration // how long to hold the packet, whole milliseconds
	// Next and Addr name where a Forward goes; both are zero for Exit.
	// An invalid Addr means "over an existing connection to Next" (how a
	// reply reaches a client that cannot be dialled).
	Next block.ID
	Addr netip.AddrPort
}

// EpochOf returns the epoch number of t.
func EpochOf(t time.Time) uint32 { return uint32(t.Unix() / int64(Epoch/time.Second)) }

// Encode returns the command's CommandSize bytes.
func (c Command) Encode() ([CommandSize]byte, error) {
	var b [CommandSize]byte
	if c.Type != Forward && c.Type != Exit {
		return b, fmt.Errorf("%w: type %d", ErrCommand, c.Type)
	}
	if c.Delay < 0 || c.Delay > MaxHopDelay || c.Delay%time.Millisecond != 0 {
		return b, fmt.Errorf("%w: %v", ErrDelay, c.Delay)
	}
	if c.Type == Exit && (c.Next != block.ID{} || c.Addr.IsValid()) {
		return b, fmt.Errorf("%w: exit names a next hop", ErrCommand)
	}
	if c.Type == Forward && (c.Next == block.ID{}) {
		return b, fmt.Errorf("%w: forward to the zero ID", ErrCommand)
	}
	b[0] = byte(c.Type)
	binary.BigEndian.PutUint32(b[2:], c.Epoch)
	binary.BigEndian.PutUint32(b[6:], uint32(c.Delay/time.Millisecond))
	copy(b[10:42], c.Next[:])
	if err := putAddr(b[42:61], c.Addr); err != nil {
		return b, err
	}
	return b, nil
}

// ParseCommand decodes a command, rejecting every non-canonical form.
func ParseCommand(b []byte) (Command, error) {
	var c Command
	if len(b) != CommandSize {
		return c, fmt.Errorf("%w: %d bytes", ErrCommand, len(b))
	}
	c.Type = CommandType(b[0])
	if c.Type != Forward && c.Type != Exit {
		return c, fmt.Errorf("%w: type %d", ErrCommand, b[0])
	}
	if b[1] != 0 || b[61] != 0 || b[62] != 0 || b[63] != 0 {
		return c, fmt.Errorf("%w: flags or reserved bytes set", ErrCommand)
	}
	c.Epoch = binary.BigEndian.Uint32(b[2:])
	ms := binary.BigEndian.Uint32(b[6:])
	c.Delay = time.Duration(ms) * time.Millisecond
	if c.Delay > MaxHopDelay {
		return c, fmt.Errorf("%w: %d ms", ErrDelay, ms)
	}
	copy(c.Next[:], b[10:42])
	var err error
	if c.Addr, err = parseAddr(b[42:61]); err != nil {
		return c, err
	}
	if c.Type == Exit && (c.Next != block.ID{} || c.Addr.IsValid()) {
		return c, fmt.Errorf("%w: exit names a next hop", ErrCommand)
	}
	if c.Type == Forward && (c.Next == block.ID{}) {
		return c, fmt.Errorf("%w: forward to the zero ID", ErrCommand)
	}
	return c, nil
}

// addrSize is family u8 || ip [16] || port u16.
const addrSize = 19

// putAddr writes a into b[0:19]: family 0 (none), 4 or 6, the IP left
// aligned and zero padded, the port.
func putAddr(b []byte, a netip.AddrPort) error {
	clear(b[:addrSize])
	if !a.IsValid() {
		return nil
	}
	ip := a.Addr().Unmap()
	if a.Port() == 0 || ip.IsUnspecified() || ip.Zone() != "" {
		return fmt.Errorf("%w: address %v", ErrCommand, a)
	}
	if ip.Is4() {
		b[0] = 4
		v := ip.As4()
		copy(b[1:], v[:])
	} else {
		b[0] = 6
		v := ip.As16()
		copy(b[1:], v[:])
	}
	binary.BigEndian.PutUint16(b[17:], a.Port())
	return nil
}

// parseAddr is the inverse of putAddr; it refuses every byte pattern
// putAddr cannot produce.
func parseAddr(b []byte) (netip.AddrPort, error) {
	port := binary.BigEndian.Uint16(b[17:19])
	switch b[0] {
	case 0:
		for _, x := range b[:addrSize] {
			if x != 0 {
				return netip.AddrPort{}, fmt.Errorf("%w: family 0 with an address", ErrCommand)
			}
		}
		return netip.AddrPort{}, nil
	case 4:
		for _, x := range b[5:17] {
			if x != 0 {
				return netip.AddrPort{}, fmt.Errorf("%w: IPv4 padding not zero", ErrCommand)
			}
		}
		ip := netip.AddrFrom4([4]byte(b[1:5]))
		if port == 0 || ip.IsUnspecified() {
			return netip.AddrPort{}, fmt.Errorf("%w: address %v:%d", ErrCommand, ip, port)
		}
		return netip.AddrPortFrom(ip, port), nil
	case 6:
		ip := netip.AddrFrom16([16]byte(b[1:17]))
		if port == 0 || ip.IsUnspecified() || ip.Is4In6() {
			return netip.AddrPort{}, fmt.Errorf("%w: address %v:%d", ErrCommand, ip, port)
		}
		return netip.AddrPortFrom(ip, port), nil
	}
	return netip.AddrPort{}, fmt.Errorf("%w: address family %d", ErrCommand, b[0])
}
