package bridge

import (
	"sync"
	"time"

	"github.com/flowmail/flowmail/internal/clock"
)

// Wrong passwords allowed before logins are refused for a while: per
// source address and, for guessers that change address, per account.
const (
	MaxFailuresPerSource  = 5
	MaxFailuresPerAccount = 20
	FailureWindow         = time.Minute
	maxLimiterSources     = 4096 // sources remembered; the oldest is forgotten first
)

// limiter counts wrong passwords in a sliding window. Its time is the
// injected clock's, so tests move it instead of waiting.
type limiter struct {
	clock clock.Clock

	mu      sync.Mutex
	sources map[string][]time.Time
	account []time.Time
}

func newLimiter(c clock.Clock) *limiter {
	return &limiter{clock: clock.Or(c), sources: map[string][]time.Time{}}
}

// recent drops the times older than the window.
func recent(ts []time.Time, now time.Time) []time.Time {
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= FailureWindow {
		i++
	}
	return ts[i:]
}

// wait returns how long source must wait before trying again; zero means
// it may try now.
func (l *limiter) wait(source string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	l.account = recent(l.account, now)
	src := recent(l.sources[source], now)
	l.sources[source] = src
	if len(src) == 0 {
		delete(l.sources, source)
	}
	var until time.Time
	if len(src) >= MaxFailuresPerSource {
		until = src[len(src)-MaxFailuresPerSource].Add(FailureWindow)
	}
	if len(l.account) >= MaxFailuresPerAccount {
		if t := l.account[len(l.account)-MaxFailuresPerAccount].Add(FailureWindow); t.After(until) {
			until = t
		}
	}
	if until.IsZero() {
		return 0
	}
	return max(until.Sub(now), time.Second)
}

// fail records a wrong password from source.
func (l *limiter) fail(source string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	if _, ok := l.sources[source]; !ok && len(l.sources) >= maxLimiterSources {
		var oldest string
		var at time.Time
		for s, ts := range l.sources {
			if last := ts[len(ts)-1]; oldest == "" || last.Before(at) {
				oldest, at = s, last
			}
		}
		delete(l.sources, oldest)
	}
	l.sources[source] = append(recent(l.sources[source], now), now)
	if n := len(l.sources[source]); n > MaxFailuresPerSource {
		l.sources[source] = l.sources[source][n-MaxFailuresPerSource:]
	}
	l.account = append(recent(l.account, now), now)
	if n := len(l.account); n > MaxFailuresPerAccount {
		l.account = l.account[n-MaxFailuresPerAccount:]
	}
}
