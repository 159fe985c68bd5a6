package kademlia

import (
	"testing"
	"time"
)

func TestStallTimeAdaptsToAnsweredRoundTrips(t *testing.T) {
	tests := map[string]struct {
		samples []time.Duration
		want    time.Duration
	}{
		"before any answer":                  {nil, initialStall},
		"fast answers: the floor":            {[]time.Duration{2 * time.Millisecond, 3 * time.Millisecond, time.Millisecond}, minStall},
		"one answer: srtt + 4·srtt/2":        {[]time.Duration{100 * time.Millisecond}, 300 * time.Millisecond},
		"steady answers: srtt + 4·rttvar":    {[]time.Duration{200 * time.Millisecond, 200 * time.Millisecond}, 200*time.Millisecond + 4*75*time.Millisecond},
		"slow answers: the ceiling":          {[]time.Duration{900 * time.Millisecond, 1500 * time.Millisecond}, maxStall},
		"an hour-long answer counts as 2 s":  {[]time.Duration{time.Hour}, maxStall},
		"a negative duration counts as zero": {[]time.Duration{-time.Second}, minStall},
		// srtt 50 ms, rttvar 25, 18.75, 14.0625 ms; then 1 s: rttvar
		// (3·14.0625 + 950)/4 = 248.046875 ms, srtt 168.75 ms.
		"a slow answer after fast ones raises it": {[]time.Duration{50 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond, time.Second}, 1160937500 * time.Nanosecond},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var e rttEstimator
			for _, d := range tc.samples {
				e.add(d)
			}
			if got := e.stall(); got != tc.want {
				t.Errorf("stall %v, want %v", got, tc.want)
			}
		})
	}
}
