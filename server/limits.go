package server

import "time"

// Limits of the account service (docs/PROTOCOL.md sections 11 and 18.6).
const (
	// SessionTimeout is how long a registration or login session waits
	// for its finish message.
	SessionTimeout = 30 * time.Second
	// MaxSessions open at once, MaxSessionsPerSource of them from one
	// source (an IP group).
	MaxSessions          = 1024
	MaxSessionsPerSource = 16
	// Login attempts (LOGIN_INIT: each is one password guess, since KE2
	// tells the client whether its password was right) allowed per
	// LimitWindow: per account, and per source. A login that finishes
	// clears its account's count.
	LoginsPerAccount = 10
	LoginsPerSource  = 30
	// RegistrationsPerSource: REGISTER_INITs per LimitWindow from one
	// source.
	RegistrationsPerSource = 10
	// STRETCHes per LimitWindow, per account and per source: each lets
	// its asker stretch one guess. A login or registration that
	// finishes clears its account's count. Per account as logins (a
	// login is one of each); per source room for the registrations too.
	StretchesPerAccount = LoginsPerAccount
	StretchesPerSource  = LoginsPerSource + RegistrationsPerSource
	LimitWindow         = time.Hour
	// MaxLimiterKeys bounds the accounts and sources counted at once;
	// at the bound, a new key is refused until windows expire.
	MaxLimiterKeys = 1 << 16
)

// limiter counts events per key in fixed windows on the injected clock.
type limiter struct {
	limit  int
	window time.Duration
	counts map[string]*windowCount
}

type windowCount struct {
	start time.Time
	n     int
}

func newLimiter(limit int, window time.Duration) *limiter {
	return &limiter{limit: limit, window: window, counts: map[string]*windowCount{}}
}

// wouldAllow reports whether one more event for key fits at now; allow
// records it. Split so two limiters can be checked before either counts.
func (l *limiter) wouldAllow(key string, now time.Time) bool {
	c, ok := l.counts[key]
	if !ok || now.Sub(c.start) >= l.window || now.Before(c.start) {
		return len(l.counts) < MaxLimiterKeys || l.sweep(now)
	}
	return c.n < l.limit
}

func (l *limiter) allow(key string, now time.Time) {
	c, ok := l.counts[key]
	if !ok || now.Sub(c.start) >= l.window || now.Before(c.start) {
		c = &windowCount{start: now}
		l.counts[key] = c
	}
	c.n++
}

// retryAfter is when key's window ends.
func (l *limiter) retryAfter(key string, now time.Time) time.Duration {
	if c, ok := l.counts[key]; ok {
		return c.start.Add(l.window).Sub(now)
	}
	return 0
}

func (l *limiter) reset(key string) { delete(l.counts, key) }

// sweep drops ended windows and reports whether room was made.
func (l *limiter) sweep(now time.Time) bool {
	for k, c := range l.counts {
		if now.Sub(c.start) >= l.window || now.Before(c.start) {
			delete(l.counts, k)
		}
	}
	return len(l.counts) < MaxLimiterKeys
}
