package transport

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/vectors"
)

// transportErrName names an error as the vectors do: the text after
// "transport: " or "block: ".
func transportErrName(err error) string {
	return vectors.RuleName(err, ErrMsgType, ErrHelloFlags, ErrNetworkName, ErrAddrFamily, ErrAddrCount, ErrTruncated, ErrTrailing, ErrFrameTooLarge, ErrMalformed, block.ErrSignature, block.ErrPubkey, block.ErrTruncated)
}

func checkTransportVector(v vectors.Vector) (map[string]string, string) {
	in, err := hex.DecodeString(v.Input)
	if err != nil {
		return nil, "bad hex"
	}
	switch v.Function {
	case "ParseHello", "VerifyHello":
		h, err := ParseHello(in)
		if err != nil {
			return nil, transportErrName(err)
		}
		out := map[string]string{
			"client":  strconv.FormatBool(h.Client),
			"network": h.Network,
			"addrs":   joinAddrs(h.Addrs),
		}
		if v.Function == "VerifyHello" {
			pk, err := identity.ParsePubkey(h.Pubkey)
			if err != nil {
				return nil, transportErrName(err)
			}
			out["id"] = pk.ID.String()
		}
		return out, ""
	case "ParseAddr":
		a, rest, err := ParseAddr(in)
		if err != nil {
			return nil, transportErrName(err)
		}
		return map[string]string{"addr": a.String(), "rest": hex.EncodeToString(rest)}, ""
	case "ReadFrame":
		max := MaxFrameSize
		if s := v.Params["max"]; s != "" {
			max, _ = strconv.Atoi(s)
		}
		p, err := readFrame(bytes.NewReader(in), max)
		if err != nil {
			return nil, transportErrName(err)
		}
		return map[string]string{"payload": hex.EncodeToString(p)}, ""
	}
	return nil, "unknown function " + v.Function
}

func joinAddrs(as []netip.AddrPort) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

func vectorIdentity() *identity.Identity {
	var seed [identity.SeedSize]byte
	copy(seed[:], "flowmail transport test vectors!")
	id, err := identity.FromSeed(seed, 20, time.Unix(1_767_225_600, 0))
	if err != nil {
		panic(err)
	}
	return id
}

func genTransportVectors() vectors.File {
	id := vectorIdentity()
	addrs := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.10:4433"), netip.MustParseAddrPort("[2001:db8::7]:443"), netip.MustParseAddrPort("[::ffff:192.0.2.1]:1")}
	hello := func(h Hello) []byte {
		if h.Pubkey == nil {
			h.Pubkey = id.Public().Block
		}
		b, err := h.Append(nil)
		if err != nil {
			panic(err)
		}
		return b
	}
	good := hello(Hello{Network: "flowmail", Addrs: addrs})
	edit := func(f func(b []byte) []byte) string { return hex.EncodeToString(f(bytes.Clone(good))) }
	netLen := func(n int) string {
		// network name of n bytes, everything else valid
		b := []byte{MsgHello, 0, byte(n)}
		b = append(b, bytes.Repeat([]byte("n"), n)...)
		b = append(b, id.Public().Block...)
		return hex.EncodeToString(append(b, 0))
	}
	addrsAt := 3 + len("flowmail") + block.PubkeySize // offset of addr_count
	badSig := bytes.Clone(id.Public().Block)
	badSig[block.PubkeySize-1] ^= 1
	// A pubkey block, properly signed, whose X25519 share is all zero.
	lowOrder, err := block.ParsePubkey(id.Public().Block)
	if err != nil {
		panic(err)
	}
	clear(lowOrder.EncKey[block.EncKeySize-32:])
	copy(lowOrder.Signature[:], ed25519.Sign(id.SigningKey(), block.SignedMessage(block.LabelPubkey, lowOrder.AppendSigned(nil))))
	frame := func(n uint32, payload ...byte) string {
		return hex.EncodeToString(append(binary.BigEndian.AppendUint32(nil, n), payload...))
	}
	vs := []vectors.Vector{
		{Name: "hello", Function: "VerifyHello", Input: hex.EncodeToString(good), Note: "a full node with three advertised addresses (IPv4, IPv6, IPv4-mapped IPv6)"},
		{Name: "hello_client_no_addrs", Function: "ParseHello", Input: hex.EncodeToString(hello(Hello{Client: true, Network: "flowmail"}))},
		{Name: "hello_network_32_bytes", Function: "ParseHello", Input: netLen(MaxNetworkName)},
		{Name: "hello_unknown_msg_type", Function: "ParseHello", Input: edit(func(b []byte) []byte { b[0] = 0x02; return b }), Error: "unknown message type", Note: "msg_type MUST be 0x01"},
		{Name: "hello_bad_flags", Function: "ParseHello", Input: edit(func(b []byte) []byte { b[1] = 0x02; return b }), Error: "invalid flags", Note: "flag bits other than bit 0 MUST be 0"},
		{Name: "hello_network_empty", Function: "ParseHello", Input: netLen(0), Error: "bad network name", Note: "network_len MUST be 1 to 32"},
		{Name: "hello_network_too_long", Function: "ParseHello", Input: netLen(MaxNetworkName + 1), Error: "bad network name", Note: "network_len MUST be 1 to 32"},
		{Name: "hello_truncated_pubkey", Function: "ParseHello", Input: edit(func(b []byte) []byte { return b[:3+len("flowmail")+block.PubkeySize-1] }), Error: "truncated"},
		{Name: "hello_bad_pubkey_signature", Function: "VerifyHello", Input: hex.EncodeToString(hello(Hello{Network: "flowmail", Pubkey: badSig})), Error: "bad signature", Note: "each side MUST verify the other's pubkey block"},
		{Name: "hello_low_order_enc_key", Function: "VerifyHello", Input: hex.EncodeToString(hello(Hello{Network: "flowmail", Pubkey: lowOrder.Encode()})), Error: "invalid pubkey block", Note: "the X25519 share of enc_key MUST NOT have low order (section 4.2); the connection is closed with 0x10"},
		{Name: "hello_too_many_addrs", Function: "ParseHello", Input: edit(func(b []byte) []byte { b[addrsAt] = MaxAdvertised + 1; return b }), Error: "too many addresses", Note: "addr_count MUST be 0 to 4"},
		{Name: "hello_bad_addr_family", Function: "ParseHello", Input: edit(func(b []byte) []byte { b[addrsAt+1] = 5; return b }), Error: "bad address family", Note: "family MUST be 4 or 6"},
		{Name: "hello_truncated_addr", Function: "ParseHello", Input: edit(func(b []byte) []byte { return b[:len(b)-1] }), Error: "truncated"},
		{Name: "hello_trailing_bytes", Function: "ParseHello", Input: edit(func(b []byte) []byte { return append(b, 0) }), Error: "trailing bytes", Note: "trailing bytes MUST be rejected (section 12)"},
		{Name: "addr_ipv4", Function: "ParseAddr", Input: "04c000020a115c"},
		{Name: "addr_ipv6_with_rest", Function: "ParseAddr", Input: "0620010db80000000000000000000000070050ff"},
		{Name: "addr_family_0", Function: "ParseAddr", Input: "00c000020a115c", Error: "bad address family"},
		{Name: "addr_ipv6_truncated", Function: "ParseAddr", Input: "0620010db8", Error: "truncated"},
		{Name: "frame", Function: "ReadFrame", Input: frame(3, 'a', 'b', 'c')},
		{Name: "frame_zero_length", Function: "ReadFrame", Input: frame(0), Error: "malformed frame", Note: "length MUST be 1 to MaxFrameSize"},
		{Name: "frame_too_large", Function: "ReadFrame", Input: frame(MaxFrameSize + 1), Error: "frame too large", Note: "a reader MUST reject a larger length before reading the payload (no payload follows here)"},
		{Name: "frame_over_limit", Function: "ReadFrame", Input: frame(5, 1, 2, 3, 4, 5), Params: map[string]string{"max": "4"}, Error: "frame too large"},
		{Name: "frame_truncated", Function: "ReadFrame", Input: frame(4, 1, 2), Error: "malformed frame"},
		{Name: "frame_trailing_bytes", Function: "ReadFrame", Input: frame(1, 1, 2), Error: "malformed frame", Note: "a stream carries one frame, then ends"},
	}
	return vectors.File{Description: "Transport HELLO, addr and frame layouts (docs/PROTOCOL.md section 7). MaxFrameSize=263168.", Vectors: vs}
}

func TestTransportVectors(t *testing.T) {
	vectors.Check(t, "transport_hello.json", genTransportVectors, checkTransportVector)
}
