package clock

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestOffsetMovesNowNotTimers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var c Offset
		start := c.Now()
		c.Advance(24 * time.Hour)
		if got := c.Now().Sub(start); got != 24*time.Hour {
			t.Fatalf("after Advance(24h) Now moved %v, want 24h", got)
		}
		if c.Elapsed() != 24*time.Hour {
			t.Fatalf("Elapsed = %v, want 24h", c.Elapsed())
		}
		timer := c.NewTimer(time.Second)
		before := time.Now()
		<-timer.C
		if waited := time.Since(before); waited != time.Second {
			t.Fatalf("a 1 s timer fired after %v of (virtual) real time, want 1 s", waited)
		}
	})
}

func TestOrFallsBackToReal(t *testing.T) {
	if _, ok := Or(nil).(Real); !ok {
		t.Fatalf("Or(nil) = %T, want Real", Or(nil))
	}
	var o Offset
	if Or(&o) != Clock(&o) {
		t.Fatal("Or(c) did not return c")
	}
}
