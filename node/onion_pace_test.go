package node

import (
	"context"
	"testing"
	"time"

	"github.com/flowmail/flowmail/internal/clock"
)

func TestPacerKeepsUnderTheRelaysRate(t *testing.T) {
	clk := &clock.Offset{}
	p := newPacer(clk, 4, 3)
	for i := range 3 {
		if d := p.take(); d != 0 {
			t.Fatalf("packet %d of the burst waits %v", i+1, d)
		}
	}
	if d := p.take(); d <= 0 || d > 250*time.Millisecond {
		t.Fatalf("the packet past the burst waits %v, want up to 250 ms at 4/s", d)
	}
	clk.Advance(time.Second)
	for i := range 3 {
		if d := p.take(); d != 0 {
			t.Fatalf("after a second, packet %d waits %v", i+1, d)
		}
	}
	if d := p.take(); d <= 0 {
		t.Fatal("a second refilled more than its rate and the burst")
	}
	// wait returns when the context ends.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := newPacer(clk, 1e-9, 1).waitAfterBurst(ctx); err == nil {
		t.Fatal("wait outlived its context")
	}
	if clientPacketsPerSecond >= OnionPacketsPerSecond || clientBurst >= OnionBurst || clientPacketsPerSecond <= 0 || clientBurst < 1 {
		t.Fatalf("client pace %d/s burst %d, relay %d/s burst %d", clientPacketsPerSecond, clientBurst, OnionPacketsPerSecond, OnionBurst)
	}
}

// waitAfterBurst spends the burst, then waits for one more packet.
func (p *pacer) waitAfterBurst(ctx context.Context) error {
	for p.take() == 0 {
	}
	return p.wait(ctx)
}
