package rendezvous

import (
	"cmp"
	"net"
	"net/netip"
	"slices"
)

// MaxPeers caps the flowmail peers a Rendezvous remembers; past it the
// least recently seen is forgotten.
const MaxPeers = 256

// addValues records the peers of one get_peers answer (or of an
// announce made to us).
func (r *Rendezvous) addValues(values []string) {
	for _, v := range values {
		p, err := ParseCompactPeer([]byte(v))
		if err != nil {
			r.log.Debug("mainline peer ignored", "err", err)
			continue
		}
		if r.isSelf(p) || (p.Addr().IsLoopback() && !r.s.loopback) || p.Addr().IsLinkLocalUnicast() {
			continue
		}
		r.mu.Lock()
		r.seq++
		_, known := r.peers[p]
		if !known && len(r.peers) >= MaxPeers {
			delete(r.peers, oldest(r.peers))
		}
		r.peers[p] = r.seq
		if !known && !r.closed {
			close(r.changed)
			r.changed = make(chan struct{})
		}
		r.mu.Unlock()
		if !known {
			r.log.Debug("flowmail peer found in mainline DHT", "peer", p)
		}
	}
}

// isSelf reports whether p is this node's own announcement coming back.
// Behind a NAT the DHT sees a public address we do not know, so the node
// must also drop itself by ID after the handshake.
func (r *Rendezvous) isSelf(p netip.AddrPort) bool {
	if int(p.Port()) != r.s.Port {
		return false
	}
	a := p.Addr()
	return a.IsLoopback() || a.IsUnspecified() || a == r.s.listenIP || r.localIPs[a]
}

func (r *Rendezvous) snapshotLocked() []netip.AddrPort {
	return byRecency(r.peers)
}

// noteContact remembers a mainline node that spoke to us.
func (r *Rendezvous) noteContact(c netip.AddrPort) {
	if !c.Addr().Is4() || c.Port() == 0 || (c.Addr().IsLoopback() && !r.s.loopback) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	if _, known := r.contacts[c]; !known {
		if len(r.contacts) >= maxContacts {
			delete(r.contacts, oldest(r.contacts))
		}
		r.contactsNew = true
	}
	r.contacts[c] = r.seq
}

// savedContacts returns the contacts, most recent first.
func (r *Rendezvous) savedContacts() []netip.AddrPort {
	r.mu.Lock()
	defer r.mu.Unlock()
	return byRecency(r.contacts)
}

// saveContacts writes the contacts file if they changed, or always when
// force is set.
func (r *Rendezvous) saveContacts(force bool) error {
	r.mu.Lock()
	if !r.contactsNew && !force {
		r.mu.Unlock()
		return nil
	}
	list := byRecency(r.contacts)
	r.contactsNew = false
	r.mu.Unlock()
	return saveContacts(r.s.StateDir, list)
}

// byRecency returns m's keys, highest sequence number first.
func byRecency(m map[netip.AddrPort]uint64) []netip.AddrPort {
	out := make([]netip.AddrPort, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b netip.AddrPort) int { return cmp.Compare(m[b], m[a]) })
	return out
}

// oldest returns the key with the smallest sequence number.
func oldest(m map[netip.AddrPort]uint64) netip.AddrPort {
	var k netip.AddrPort
	first := true
	for p, s := range m {
		if first || s < m[k] {
			k, first = p, false
		}
	}
	return k
}

// localIPs lists this host's interface addresses, to recognise our own
// announcement when it comes back.
func localIPs() map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return out
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out[ip.Unmap()] = true
			}
		}
	}
	return out
}
