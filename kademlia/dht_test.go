package kademlia

import (
	"net/netip"
	"testing"

	"github.com/flowmail/flowmail/identity"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// identityBlock returns a valid pubkey block.
func identityBlock(t *testing.T) []byte {
	t.Helper()
	id, err := identity.FromSeed([32]byte{9}, 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	return id.Public().Block
}

func TestUsableAddrRefusesUndialableAddresses(t *testing.T) {
	for s, want := range map[string]bool{
		"192.0.2.1:4410":                true,
		"[2001:db8::1]:4410":            true,
		"[::ffff:192.0.2.1]:4410":       true,
		"0.0.0.0:4410":                  false,
		"[::]:4410":                     false,
		"[::ffff:0.0.0.0]:4410":         false, // mapped unspecified
		"255.255.255.255:4410":          false,
		"[::ffff:255.255.255.255]:4410": false,
		"224.0.0.1:4410":                false,
		"192.0.2.1:0":                   false,
	} {
		if got := usableAddr(netip.MustParseAddrPort(s)); got != want {
			t.Errorf("usableAddr(%s) = %v, want %v", s, got, want)
		}
	}
}
