package gateway

import (
	"net"
	"sync"
	"time"
)

// maxLimitKeys bounds the keys a limiter remembers: past it, a new
// window starts for all (forgetting counts errs towards accepting).
const maxLimitKeys = 65536

// limiter counts events per key in fixed windows of RateWindow on the
// caller's clock.
type limiter struct {
	mu     sync.Mutex
	max    int
	start  time.Time
	counts map[string]int
}

func newLimiter(max int) *limiter { return &limiter{max: max, counts: map[string]int{}} }

// take counts n events for key at now, and reports whether they fit;
// events that do not fit are not counted. It also returns when the
// current window ends.
func (l *limiter) take(key string, n int, now time.Time) (bool, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= RateWindow || now.Before(l.start) || len(l.counts) >= maxLimitKeys {
		l.start, l.counts = now, map[string]int{}
	}
	end := l.start.Add(RateWindow)
	if l.counts[key]+n > l.max {
		return false, end
	}
	l.counts[key] += n
	return true, end
}

// ipGroup is the source an address counts as: its /24 (IPv4) or /48
// (IPv6), as in docs/PROTOCOL.md 7.4.
func ipGroup(addr net.Addr) string {
	var ip net.IP
	switch a := addr.(type) {
	case *net.TCPAddr:
		ip = a.IP
	default:
		host, _, err := net.SplitHostPort(addr.String())
		if err != nil {
			return addr.String()
		}
		ip = net.ParseIP(host)
	}
	if v4 := ip.To4(); v4 != nil {
		return v4.Mask(net.CIDRMask(24, 32)).String() + "/24"
	}
	if ip == nil {
		return addr.String()
	}
	return ip.Mask(net.CIDRMask(48, 128)).String() + "/48"
}
