package kadsim

import (
	"os"
	"strconv"
	"testing"
)

// DefaultSeed keeps CI runs identical; FLOWMAIL_SEED explores others.
const DefaultSeed = 20260101

// Seed returns the seed of a randomised test: FLOWMAIL_SEED when set,
// else DefaultSeed. It logs the seed, and logs how to replay it again
// when the test fails.
func Seed(t testing.TB) uint64 {
	t.Helper()
	seed := uint64(DefaultSeed)
	if v := os.Getenv("FLOWMAIL_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("FLOWMAIL_SEED=%q: %v", v, err)
		}
		seed = s
	}
	t.Logf("seed %d", seed)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s failed with seed %d: replay with FLOWMAIL_SEED=%d go test -run '^%s$'", t.Name(), seed, seed, t.Name())
		}
	})
	return seed
}

// Long reports whether FLOWMAIL_LONG=1 asks for the long variants.
func Long() bool { return os.Getenv("FLOWMAIL_LONG") == "1" }

// Size returns the nodes of a simulation: FLOWMAIL_SIMNODES when set,
// else long with FLOWMAIL_LONG=1, else short.
func Size(t testing.TB, short, long int) int {
	t.Helper()
	if v := os.Getenv("FLOWMAIL_SIMNODES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2 {
			t.Fatalf("FLOWMAIL_SIMNODES=%q: want a number of nodes, at least 2", v)
		}
		return n
	}
	if Long() {
		return long
	}
	return short
}
