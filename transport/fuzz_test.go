package transport

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"testing"

	"github.com/flowmail/flowmail/block"
)

// addVectorInputs seeds a fuzz corpus with the inputs of the vectors
// that exercise function.
func addVectorInputs(f *testing.F, function string) {
	for _, v := range genTransportVectors().Vectors {
		if v.Function != function {
			continue
		}
		b, err := hex.DecodeString(v.Input)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzHello(f *testing.F) {
	addVectorInputs(f, "ParseHello")
	addVectorInputs(f, "VerifyHello")
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHello(b)
		if err != nil {
			return
		}
		again, err := h.Append(nil)
		if err != nil {
			t.Fatalf("parsed HELLO does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, again)
		}
	})
}

func FuzzAddr(f *testing.F) {
	addVectorInputs(f, "ParseAddr")
	f.Add([]byte{4, 127, 0, 0, 1, 0, 80})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, rest, err := ParseAddr(b)
		if err != nil {
			return
		}
		for _, loopback := range []bool{false, true} {
			if err := CheckPeerAddr(a, loopback); err != nil && !errors.Is(err, ErrAddrUnusable) {
				t.Fatalf("CheckPeerAddr(%v): %v is not ErrAddrUnusable", a, err)
			}
		}
		again, err := AppendAddr(nil, a)
		if err != nil {
			t.Fatalf("parsed address %v does not encode: %v", a, err)
		}
		if !bytes.Equal(append(again, rest...), b) {
			t.Fatalf("re-encoding %v differs:\n in %x\nout %x", a, b, again)
		}
	})
}

// FuzzFrame reads a stream as the responder does, under a small limit and
// under MaxFrameSize, delivered whole and a few bytes at a time (step
// picks how many), so the buffer grows as it does on a slow stream.
func FuzzFrame(f *testing.F) {
	addVectorInputs(f, "ReadFrame")
	f.Add(appendFrame(nil, bytes.Repeat([]byte{7}, 40)))
	f.Add(appendFrame(nil, bytes.Repeat([]byte{7}, 3*frameFirstChunk)))
	f.Fuzz(func(t *testing.T, b []byte) {
		step := 1 + len(b)%97
		for _, max := range []int{32, MaxFrameSize} {
			p, err := readFrame(bytes.NewReader(b), max)
			q, qerr := readFrameFrom(&dribble{b: b, step: step}, max, &frameBuffers{alloc: func(n int) []byte {
				if n > max {
					t.Fatalf("allocated %d bytes under limit %d", n, max)
				}
				return make([]byte, n)
			}})
			if (err == nil) != (qerr == nil) || !bytes.Equal(p, q) {
				t.Fatalf("read whole: %v; read %d bytes at a time: %v", err, step, qerr)
			}
			if err != nil {
				if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrFrameTooLarge) {
					t.Fatalf("error %v is neither malformed nor too large", err)
				}
				if len(b) >= 4 && binary.BigEndian.Uint32(b) > uint32(max) && !errors.Is(err, ErrFrameTooLarge) {
					t.Fatalf("length over %d reported as %v", max, err)
				}
				continue
			}
			if len(p) == 0 || len(p) > max {
				t.Fatalf("accepted a payload of %d bytes with limit %d", len(p), max)
			}
			if !bytes.Equal(appendFrame(nil, p), b) {
				t.Fatalf("frame re-encodes differently")
			}
		}
	})
}

func TestAppendAddrRefusesWhatTheWireCannotCarry(t *testing.T) {
	for _, a := range []netip.AddrPort{{}, netip.MustParseAddrPort("[fe80::1%eth0]:1")} {
		if b, err := AppendAddr(nil, a); !errors.Is(err, ErrAddrFamily) {
			t.Errorf("AppendAddr(%v) = %x, %v", a, b, err)
		}
	}
}

func TestHelloAppendChecksFields(t *testing.T) {
	pk := make([]byte, block.PubkeySize)
	tests := []struct {
		name string
		h    Hello
		want error
	}{
		{"EmptyNetwork", Hello{Pubkey: pk}, ErrNetworkName},
		{"ShortPubkey", Hello{Network: "n", Pubkey: pk[:10]}, ErrTruncated},
		{"TooManyAddrs", Hello{Network: "n", Pubkey: pk, Addrs: make([]netip.AddrPort, MaxAdvertised+1)}, ErrAddrCount},
		{"InvalidAddr", Hello{Network: "n", Pubkey: pk, Addrs: make([]netip.AddrPort, 1)}, ErrAddrFamily},
	}
	for _, tt := range tests {
		if _, err := tt.h.Append(nil); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}
