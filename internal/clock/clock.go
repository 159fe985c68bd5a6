// Package clock is the one source of time for the DHT, the block stores
// and the node loops. Components take a Clock in their Config and read
// time only through it, so a test moves time for all of them together.
//
// Two ways of controlling time are used, for two kinds of test:
//   - under testing/synctest (simulations on the in-memory transport),
//     Real is virtual time: timers fire when every goroutine blocks;
//   - over real sockets, which synctest cannot host, an Offset clock
//     adds a settable offset to real time, so a test can make a day pass
//     for expiry and republishing while timeouts still run on real time.
package clock

import (
	"sync/atomic"
	"time"
)

// Clock tells the time and makes timers. Durations (timeouts, stall
// timers, tickers) always run at real speed; only Now can be moved.
type Clock interface {
	// Now is the current time.
	Now() time.Time
	// NewTimer returns a timer that fires once after d.
	NewTimer(d time.Duration) *time.Timer
	// NewTicker returns a ticker that fires every d.
	NewTicker(d time.Duration) *time.Ticker
}

// Real is the system clock (virtual inside a synctest bubble).
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// NewTimer returns time.NewTimer(d).
func (Real) NewTimer(d time.Duration) *time.Timer { return time.NewTimer(d) }

// NewTicker returns time.NewTicker(d).
func (Real) NewTicker(d time.Duration) *time.Ticker { return time.NewTicker(d) }

// Offset is real time plus an offset that tests move forward. The zero
// value is real time. It is safe for concurrent use.
type Offset struct {
	Real
	offset atomic.Int64 // nanoseconds
}

// Now returns time.Now() plus the offset.
func (c *Offset) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Advance moves Now forward by d (backward for negative d).
func (c *Offset) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// Elapsed is the total offset added so far.
func (c *Offset) Elapsed() time.Duration { return time.Duration(c.offset.Load()) }

// Or returns c, or Real when c is nil: what a Config uses for an unset
// clock.
func Or(c Clock) Clock {
	if c == nil {
		return Real{}
	}
	return c
}
