package node

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/transport"
)

func TestReachableAt(t *testing.T) {
	ap := netip.MustParseAddrPort
	local := []netip.Addr{netip.MustParseAddr("192.168.1.5"), netip.MustParseAddr("127.0.0.1")}
	for _, tc := range []struct {
		name             string
		observed, listen string
		advertised       []netip.AddrPort
		want             bool
	}{
		{"seen at the listen address", "127.0.0.1:4410", "127.0.0.1:4410", nil, true},
		{"seen at another IP", "203.0.113.7:4410", "192.168.1.5:4410", nil, false},
		{"port rewritten (NAT)", "192.168.1.5:50123", "192.168.1.5:4410", nil, false},
		{"every interface, seen at one", "192.168.1.5:4410", "0.0.0.0:4410", nil, true},
		{"every interface, seen at a public IP", "203.0.113.7:4410", "0.0.0.0:4410", nil, false},
		{"forwarded and advertised", "203.0.113.7:4410", "0.0.0.0:4410", []netip.AddrPort{ap("203.0.113.7:4410")}, true},
		{"IPv4-mapped observation", "[::ffff:127.0.0.1]:4410", "127.0.0.1:4410", nil, true},
	} {
		if got := reachableAt(ap(tc.observed), ap(tc.listen), tc.advertised, local); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// natConn is a port-rewriting NAT on loopback: packets the node sends
// leave from another socket, so peers see another port than the one the
// node listens on, and their replies come back through the NAT.
type natConn struct {
	net.PacketConn              // the node's own socket (its listen port)
	outside        *net.UDPConn // the NAT's public side
	wg             sync.WaitGroup
}

func newNAT(t *testing.T) *natConn {
	t.Helper()
	inside, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	outside, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	n := &natConn{PacketConn: inside, outside: outside}
	n.wg.Add(1)
	go func() { // replies to the public side are delivered inside
		defer n.wg.Done()
		buf := make([]byte, 65536)
		for {
			k, _, err := outside.ReadFromUDP(buf)
			if err != nil {
				return
			}
			_, _ = outside.WriteToUDP(buf[:k], inside.LocalAddr().(*net.UDPAddr))
		}
	}()
	t.Cleanup(func() { outside.Close(); inside.Close(); n.wg.Wait() })
	return n
}

func (n *natConn) WriteTo(p []byte, addr net.Addr) (int, error) { return n.outside.WriteTo(p, addr) }

// TestNodeBehindNATRunsAsClient: peers see the node at a port it does
// not listen on, so it moves itself to client mode and stays out of
// routing tables, and can still store and fetch.
func TestNodeBehindNATRunsAsClient(t *testing.T) {
	ctx := hangGuard(t)
	seed := startNode(t, ctx, Config{DataDir: t.TempDir()})
	peer := startNode(t, ctx, Config{DataDir: t.TempDir(), Bootstrap: []transport.Contact{seed.Contact()}})
	nat := newNAT(t)
	natted := startNode(t, ctx, Config{DataDir: t.TempDir(), PacketConn: nat, Bootstrap: []transport.Contact{seed.Contact()}})
	if !natted.Status().Client {
		t.Fatalf("a node seen only at a rewritten port stayed a full node (seen as %v)", natted.Status().Observed)
	}
	for _, n := range []*Node{seed, peer} {
		for _, c := range n.DHT().Contacts() {
			if c.ID == natted.ID() {
				t.Fatalf("node %s keeps the unreachable node in its routing table", n.ID().Short())
			}
		}
	}
	b := dataBlock(t, 500)
	if err := natted.Put(ctx, b, time.Hour); err != nil {
		t.Fatalf("the client-mode node cannot store: %v", err)
	}
	if _, err := peer.Get(ctx, block.Sum(b)); err != nil {
		t.Fatalf("its block cannot be fetched: %v", err)
	}
}
