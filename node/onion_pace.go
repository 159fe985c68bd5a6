package node

import (
	"context"
	"sync"
	"time"

	"github.com/flowmail/flowmail/internal/clock"
)

// Client pacing: a relay takes OnionPacketsPerSecond packets a second
// from one source, in bursts of OnionBurst, and refuses the rest
// (ErrOnionThrottled). A client that sends a big mail's packets as fast
// as it builds them would be refused by its own guard and give up on
// paths that were fine, so it sends at three quarters of that rate.
const (
	clientPacketsPerSecond = OnionPacketsPerSecond * 3 / 4
	clientBurst            = OnionBurst * 3 / 4
)

// pacer is a token bucket on the node's clock: wait returns once a
// packet may go.
type pacer struct {
	mu    sync.Mutex
	clk   clock.Clock
	rate  float64 // tokens a second
	burst float64
	b     tokenBucket
}

func newPacer(clk clock.Clock, rate float64, burst int) *pacer {
	return &pacer{clk: clk, rate: rate, burst: float64(burst), b: tokenBucket{tokens: float64(burst), last: clk.Now()}}
}

// take takes a token if one is there, else says how long until one is.
func (p *pacer) take() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.b.take(p.clk.Now(), p.rate, p.burst)
}

// wait blocks until a packet may go, or ctx ends.
func (p *pacer) wait(ctx context.Context) error {
	for {
		d := p.take()
		if d <= 0 {
			return nil
		}
		t := p.clk.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
