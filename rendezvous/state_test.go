package rendezvous

import (
	"bytes"
	"crypto/rand"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestStateStaysInStateDir checks that neither the library (whose default
// is ~/.taipeitorrent) nor this package writes outside StateDir, and that
// a mainline node that queried us is saved there.
func TestStateStaysInStateDir(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	m := startLocalMainline(t, 0)
	network := testNetwork(t)
	a := startNode(t, m.Routers, network, 40001)
	waitAnnounced(t, m, a)
	b := startNode(t, m.Routers, network, 40002)
	waitFor(t, a, loopback(40002))
	waitFor(t, b, loopback(40001))

	// A mainline node asks a for peers, as a real one would; a answers
	// and remembers it as a contact.
	querier, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer querier.Close()
	ih := a.InfoHash()
	askGetPeers(t, querier, a.Addr(), ih)

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if written := filesUnder(t, home); len(written) > 0 {
		t.Fatalf("files written under $HOME: %v", written)
	}
	for _, r := range []*Rendezvous{a, b} {
		if got := filesUnder(t, r.s.StateDir); !slices.Equal(got, []string{contactsFile}) {
			t.Fatalf("StateDir holds %v, want only %s", got, contactsFile)
		}
	}
	saved, err := loadContacts(a.s.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if q := querier.LocalAddr().(*net.UDPAddr).AddrPort(); !slices.Contains(saved, q) {
		t.Fatalf("saved contacts %v lack %v, which queried us", saved, q)
	}
}

// askGetPeers sends a KRPC get_peers query from conn to addr until it
// is answered (the DHT may drop a packet under load, as UDP does), and
// returns the answer.
func askGetPeers(t *testing.T, conn *net.UDPConn, to netip.AddrPort, ih [20]byte) []byte {
	t.Helper()
	id := make([]byte, 20)
	rand.Read(id)
	q := "d1:ad2:id20:" + string(id) + "9:info_hash20:" + string(ih[:]) + "e1:q9:get_peers1:t2:gp1:y1:qe"
	deadline := time.Now().Add(discoveryDeadline)
	buf := make([]byte, 4096)
	for time.Now().Before(deadline) {
		if _, err := conn.WriteToUDPAddrPort([]byte(q), to); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				break // resend
			}
			if from == to && bytes.Contains(buf[:n], []byte("1:y1:r")) {
				return buf[:n]
			}
		}
	}
	t.Fatalf("no answer to get_peers from %v", to)
	return nil
}

// filesUnder lists the files under dir, relative to it.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRestartBootstrapsFromSavedContacts starts a node whose only router
// is dead but whose StateDir remembers the mainline nodes: it still finds
// its network.
func TestRestartBootstrapsFromSavedContacts(t *testing.T) {
	m := startLocalMainline(t, 0)
	network := testNetwork(t)
	a := startNode(t, m.Routers, network, 40001)
	waitAnnounced(t, m, a)

	var saved []netip.AddrPort
	for _, s := range m.Routers {
		saved = append(saved, netip.MustParseAddrPort(s))
	}
	dir := t.TempDir()
	if err := saveContacts(dir, saved); err != nil {
		t.Fatal(err)
	}
	c := testConfig(t, []string{deadAddr(t).String()}, network, 40002)
	c.StateDir = dir
	b := startConfigured(t, c)
	waitFor(t, b, loopback(40001))
	waitFor(t, a, loopback(40002))
}

// deadAddr returns a loopback UDP address nobody listens on.
func deadAddr(t *testing.T) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().(*net.UDPAddr).AddrPort()
	c.Close()
	return addr
}
