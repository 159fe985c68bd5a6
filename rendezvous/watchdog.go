package rendezvous

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net/netip"
	"time"
)

// The library's socket reader wedges for good after three zero-length
// datagrams (see stopDHT): the node goes deaf and cannot be stopped. The
// watchdog pings the node from a socket of ours and, when it stops
// answering, abandons it and starts a fresh one on the same port. Each
// restart leaves two goroutines and the dead node's tables behind, so
// restarts back off, up to one per maxRestartGap.
const (
	maxProbeEvery       = 30 * time.Second
	defaultProbeTimeout = 2 * time.Second
	pingsPerProbe       = 4
	missesBeforeRestart = 3
	maxRestartGap       = time.Hour
)

type watchdog struct {
	misses      int
	nextRestart time.Time
	gap         time.Duration
}

// watch probes the running node and restarts it after repeated silence.
func (r *Rendezvous) watch(w *watchdog) {
	if r.cur != nil && r.answers() {
		w.misses = 0
		return
	}
	if r.ctx.Err() != nil {
		return
	}
	w.misses++
	if w.misses < missesBeforeRestart || time.Now().Before(w.nextRestart) {
		return
	}
	r.restart()
	w.misses = 0
	w.nextRestart = time.Now().Add(w.gap)
	w.gap = min(2*w.gap, maxRestartGap)
}

// restart replaces the running node with a fresh one, on the same port
// when it is free.
func (r *Rendezvous) restart() {
	addr := r.Addr()
	r.log.Warn("mainline DHT stopped answering; restarting it", "dht_addr", addr)
	err := r.stopInstance(r.cur)
	r.cur = nil
	r.mu.Lock()
	r.restarts++
	if errors.Is(err, ErrWedged) {
		r.wedged++
	}
	r.mu.Unlock()
	if err != nil {
		r.log.Warn("abandoning wedged mainline DHT node", "err", err)
	}
	port := int(addr.Port())
	if probePort(r.s.listenIP, port) != nil {
		port = 0
	}
	in, err := r.startInstance(port)
	if err != nil {
		r.log.Error("mainline DHT did not restart; retrying later", "err", err)
		return
	}
	r.cur = in
	r.log.Info("mainline DHT node replaced", "dht_addr", r.Addr())
	r.round()
}

// answers sends the node KRPC pings, pingsPerProbe of them spread over
// probeTimeout, and reports whether any was answered. The node drops
// packets past 100 a second, so one lost ping means little.
func (r *Rendezvous) answers() bool {
	target := r.Addr()
	if target.Addr().IsUnspecified() {
		target = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), target.Port())
	}
	var id [20]byte
	var tx [4]byte
	rand.Read(id[:])
	rand.Read(tx[:])
	ping := []byte("d1:ad2:id20:" + string(id[:]) + "e1:q4:ping1:t4:" + string(tx[:]) + "1:y1:qe")
	wantTx := []byte("1:t4:" + string(tx[:]))
	buf := make([]byte, 1500)
	for range pingsPerProbe {
		if r.ctx.Err() != nil {
			return false
		}
		if _, err := r.probe.WriteToUDPAddrPort(ping, target); err != nil {
			r.log.Debug("watchdog ping", "err", err)
			return false
		}
		if r.awaitPong(target, wantTx, buf) {
			return true
		}
	}
	return false
}

// awaitPong reads the watchdog socket for one ping's share of
// probeTimeout, looking for an answer carrying wantTx from target.
func (r *Rendezvous) awaitPong(target netip.AddrPort, wantTx, buf []byte) bool {
	if err := r.probe.SetReadDeadline(time.Now().Add(r.s.probeTimeout / pingsPerProbe)); err != nil {
		return false
	}
	// Close must not wait out the probe.
	stop := context.AfterFunc(r.ctx, func() { r.probe.SetReadDeadline(time.Now()) })
	defer stop()
	for {
		n, from, err := r.probe.ReadFromUDPAddrPort(buf)
		if err != nil {
			return false
		}
		// Anything else (the node pinging us back, a late answer to an
		// earlier probe) is skipped.
		if from.Addr().Unmap() == target.Addr() && from.Port() == target.Port() &&
			bytes.Contains(buf[:n], []byte("1:y1:r")) && bytes.Contains(buf[:n], wantTx) {
			return true
		}
	}
}

// restartCount is how many times the watchdog replaced the node, and
// how many of the replaced nodes could not be stopped.
func (r *Rendezvous) restartCount() (restarts, wedged int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.restarts, r.wedged
}
