package rendezvous

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/flowmail/flowmail/internal/vectors"
)

func peerErrName(err error) string {
	return vectors.RuleName(err, ErrPeerLength, ErrPeerPortZero, ErrPeerUnspecified, ErrPeerMulticast, ErrPeerBroadcast, ErrNetworkLen)
}

func TestPeerVectors(t *testing.T) {
	vectors.Check(t, "rendezvous_peer.json", func() vectors.File {
		v := func(name, in, errName, note string) vectors.Vector {
			return vectors.Vector{Name: name, Function: "ParseCompactPeer", Input: in, Error: errName, Note: note}
		}
		return vectors.File{
			Description: "Compact peer entries of a mainline get_peers answer (docs/PROTOCOL.md, rendezvous).",
			Vectors: []vectors.Vector{
				v("public", "c0000201115c", "", "ip [4] || port u16, big-endian"),
				v("loopback", "7f0000019c41", "", "loopback parses; whether to use it is local policy"),
				v("short", "c00002011d", "peer_length", "entries MUST be exactly 6 bytes"),
				v("ipv6_form", "20010db80000000000000000000000011151", "peer_length", "IPv6 entries (18 bytes) are not accepted"),
				v("empty", "", "peer_length", "entries MUST be exactly 6 bytes"),
				v("port_zero", "c00002010000", "peer_port_zero", "port MUST NOT be 0"),
				v("unspecified", "00000000115c", "peer_ip_unspecified", "IP MUST NOT be 0.0.0.0"),
				v("multicast", "e00000fb115c", "peer_ip_multicast", "IP MUST NOT be multicast"),
				v("broadcast", "ffffffff115c", "peer_ip_broadcast", "IP MUST NOT be 255.255.255.255"),
			},
		}
	}, func(v vectors.Vector) (map[string]string, string) {
		b, ok := hexBytes(v.Input)
		if !ok {
			return nil, "bad hex"
		}
		p, err := ParseCompactPeer(b)
		if err != nil {
			return nil, peerErrName(err)
		}
		return map[string]string{"addr": p.String()}, ""
	})
}

func FuzzParseCompactPeer(f *testing.F) {
	for _, s := range []string{"c0000201115c", "7f0000019c41", "c00002010000", "00000000115c", "e00000fb115c", "ffffffff115c", "", "c00002011d"} {
		b, _ := hexBytes(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseCompactPeer(b)
		if err != nil {
			return
		}
		if got := AppendCompactPeer(nil, p); string(got) != string(b) {
			t.Fatalf("%x decodes to %v, which encodes to %x", b, p, got)
		}
	})
}

// testRendezvous is a Rendezvous with no DHT behind it, for the
// bookkeeping tests.
func testRendezvous(loopback bool) *Rendezvous {
	s, err := Config{Network: "flowmail", Port: 4433, StateDir: "unused"}.settings()
	if err != nil {
		panic(err)
	}
	s.loopback = loopback
	return &Rendezvous{
		s:        s,
		log:      s.Logger,
		localIPs: map[netip.Addr]bool{netip.MustParseAddr("192.0.2.7"): true},
		peers:    map[netip.AddrPort]uint64{},
		contacts: map[netip.AddrPort]uint64{},
		changed:  make(chan struct{}),
	}
}

func compact(s string) string {
	return string(AppendCompactPeer(nil, netip.MustParseAddrPort(s)))
}

func TestAddValuesKeepsOnlyOtherUsablePeers(t *testing.T) {
	tests := []struct {
		name     string
		loopback bool
		values   []string
		want     []string
	}{
		{"other peer kept", false, []string{compact("198.51.100.1:4433")}, []string{"198.51.100.1:4433"}},
		{"own interface address with our port dropped", false, []string{compact("192.0.2.7:4433")}, nil},
		{"own interface address with another port kept", false, []string{compact("192.0.2.7:4434")}, []string{"192.0.2.7:4434"}},
		{"loopback dropped on a public DHT", false, []string{compact("127.0.0.1:5000")}, nil},
		{"loopback kept on a loopback DHT", true, []string{compact("127.0.0.1:5000")}, []string{"127.0.0.1:5000"}},
		{"own loopback port dropped on a loopback DHT", true, []string{compact("127.0.0.1:4433")}, nil},
		{"link-local dropped", false, []string{compact("169.254.1.1:4433")}, nil},
		{"malformed skipped, rest kept", false, []string{"abc", compact("0.0.0.0:1"), compact("198.51.100.1:1")}, []string{"198.51.100.1:1"}},
		{"duplicates merged", false, []string{compact("198.51.100.1:1"), compact("198.51.100.1:1")}, []string{"198.51.100.1:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := testRendezvous(tt.loopback)
			r.addValues(tt.values)
			var got []string
			for _, p := range r.Peers() {
				got = append(got, p.String())
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("peers %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPeersAreCappedAndOrderedByRecency(t *testing.T) {
	r := testRendezvous(false)
	first := r.Changed()
	for i := range MaxPeers + 10 {
		r.addValues([]string{compact(netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}), 1).String())})
	}
	select {
	case <-first:
	default:
		t.Fatal("Changed not closed after new peers")
	}
	// Seeing a known peer again moves it to the front without signalling.
	again := r.Changed()
	seen := netip.MustParseAddrPort("198.51.0.200:1")
	r.addValues([]string{compact(seen.String())})
	select {
	case <-again:
		t.Fatal("Changed closed for a peer already known")
	default:
	}
	peers := r.Peers()
	if len(peers) != MaxPeers {
		t.Fatalf("%d peers remembered, want the cap %d", len(peers), MaxPeers)
	}
	if peers[0] != seen {
		t.Fatalf("most recent peer is %v, want %v", peers[0], seen)
	}
	for _, p := range peers {
		if p == netip.MustParseAddrPort("198.51.0.0:1") {
			t.Fatal("the oldest peer survived the cap")
		}
	}
}
