package kademlia

import (
	"errors"
	"net/netip"
	"testing"
)

// TestCheckPeerAddrRefusesEveryClass walks the address classes of
// docs/PROTOCOL.md section 8, off loopback and on it.
func TestCheckPeerAddrRefusesEveryClass(t *testing.T) {
	tests := []struct {
		addr          string
		off, loopback bool // usable learned off loopback, over loopback
	}{
		{"192.0.2.1:4410", true, true},
		{"10.1.2.3:4410", true, true},
		{"[2001:db8::1]:4410", true, true},
		{"[::ffff:192.0.2.1]:4410", true, true},
		{"127.0.0.1:4410", false, true},
		{"127.3.4.5:4410", false, true},
		{"[::1]:4410", false, true},
		{"[::ffff:127.0.0.1]:4410", false, true},
		{"127.255.255.255:4410", false, false}, // loopback broadcast
		{"127.0.0.0:4410", false, false},       // loopback network address
		{"0.0.0.0:4410", false, false},
		{"0.0.0.1:4410", false, false},
		{"0.255.1.2:4410", false, false},
		{"[::]:4410", false, false},
		{"[::ffff:0.0.0.0]:4410", false, false},
		{"[::ffff:0.0.0.1]:4410", false, false},
		{"[::1.2.3.4]:4410", false, false}, // IPv4-compatible, deprecated
		{"169.254.10.20:4410", false, false},
		{"[::ffff:169.254.1.1]:4410", false, false},
		{"[fe80::1]:4410", false, false},
		{"[fe80::1%eth0]:4410", false, false},
		{"[febf::1]:4410", false, false},
		{"[fec0::1]:4410", false, false},
		{"224.0.0.1:4410", false, false},
		{"239.255.255.250:4410", false, false},
		{"[ff02::1]:4410", false, false},
		{"255.255.255.255:4410", false, false},
		{"[::ffff:255.255.255.255]:4410", false, false},
		{"240.0.0.1:4410", false, false},
		{"192.0.2.1:0", false, false},
		{"127.0.0.1:0", false, false},
	}
	for _, tc := range tests {
		a := netip.MustParseAddrPort(tc.addr)
		for _, lb := range []bool{false, true} {
			want := tc.off
			if lb {
				want = tc.loopback
			}
			err := CheckPeerAddr(a, lb)
			if (err == nil) != want {
				t.Errorf("CheckPeerAddr(%s, onLoopback %v) = %v, want usable %v", tc.addr, lb, err, want)
			}
			if err != nil && !errors.Is(err, ErrAddrClass) {
				t.Errorf("CheckPeerAddr(%s) = %v, want ErrAddrClass", tc.addr, err)
			}
		}
	}
	if CheckPeerAddr(netip.AddrPort{}, true) == nil {
		t.Error("the zero address is usable")
	}
}
