// Package testseed gives randomised tests their seed: a fixed default
// keeps CI runs identical, FLOWMAIL_SEED explores others, and the seed is
// logged so a failing run prints how to replay it. Only tests import it;
// it imports no flowmail package.
package testseed

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
)

// Default is the seed when FLOWMAIL_SEED is unset.
const Default = 20261201

// Seed returns FLOWMAIL_SEED, or Default, and logs it.
func Seed(t testing.TB) uint64 {
	t.Helper()
	seed := uint64(Default)
	if s := os.Getenv("FLOWMAIL_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("FLOWMAIL_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (replay: FLOWMAIL_SEED=%d go test -run '^%s$' in this package)", seed, seed, t.Name())
	return seed
}

// Rand returns a generator seeded by Seed.
func Rand(t testing.TB) *rand.Rand {
	t.Helper()
	return rand.New(rand.NewPCG(Seed(t), 0))
}

// ChaCha8 returns a stream seeded by Seed, for tests that read key
// material from an io.Reader.
func ChaCha8(t testing.TB) *rand.ChaCha8 {
	t.Helper()
	var k [32]byte
	binary.BigEndian.PutUint64(k[:], Seed(t))
	return rand.NewChaCha8(k)
}
