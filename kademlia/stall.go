package kademlia

import (
	"sync"
	"time"
)

// Bounds of the adaptive stall time (Config.StallTimeout zero).
//
// The floor keeps estimator noise from passing over live peers: it is
// above every round trip of the simulator (20 to 120 ms) and of a first
// request on loopback, where the QUIC handshake, the HELLO exchange and
// the pubkey checks come before the answer. The ceiling keeps the stall
// well under the dial timeout (5 s), which is what it exists to beat.
// Before the first answer the stall is initialStall, a first request
// (three round trips with the handshake) on a 150 ms path.
const (
	minStall     = 250 * time.Millisecond
	maxStall     = 2 * time.Second
	initialStall = 500 * time.Millisecond
)

// rttEstimator smooths the response times of answered lookup requests as
// RFC 6298 does for TCP's retransmission timer: srtt and rttvar with
// gains 1/8 and 1/4; the stall time is srtt + 4·rttvar within
// [minStall, maxStall]. Durations come from the runtime clock, as context
// deadlines do, so under testing/synctest they are virtual and a
// simulation replays.
type rttEstimator struct {
	mu      sync.Mutex
	srtt    time.Duration
	rttvar  time.Duration
	samples int
}

func (e *rttEstimator) add(rtt time.Duration) {
	// A sample beyond the ceiling cannot move the stall time further up;
	// clamping it keeps one very slow answer from lingering in srtt.
	rtt = min(max(rtt, 0), maxStall)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.samples == 0 {
		e.srtt, e.rttvar = rtt, rtt/2
	} else {
		diff := e.srtt - rtt
		if diff < 0 {
			diff = -diff
		}
		e.rttvar = (3*e.rttvar + diff) / 4
		e.srtt = (7*e.srtt + rtt) / 8
	}
	e.samples++
}

func (e *rttEstimator) stall() time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.samples == 0 {
		return initialStall
	}
	return min(max(e.srtt+4*e.rttvar, minStall), maxStall)
}

// stallTimeout returns how long a lookup request may go unanswered
// before the lookup passes over it; zero means never.
func (d *DHT) stallTimeout() time.Duration {
	switch {
	case d.cfg.StallTimeout > 0:
		return d.cfg.StallTimeout
	case d.cfg.StallTimeout < 0:
		return 0
	}
	return d.rtt.stall()
}
