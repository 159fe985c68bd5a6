// Package testseed gives randomised tests their seed: FLOWMAIL_SEED when
// set, else a fresh one, logged either way so a failure can be replayed.
// Tests only; it imports nothing of flowmail.
package testseed

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
)

// Seed returns the test's seed and logs how to replay it.
func Seed(t testing.TB) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("FLOWMAIL_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("FLOWMAIL_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with FLOWMAIL_SEED=%d)", seed, seed)
	return seed
}

// ChaCha8 returns a deterministic stream (an io.Reader of key material)
// from the test's seed.
func ChaCha8(t testing.TB) *rand.ChaCha8 {
	t.Helper()
	var k [32]byte
	binary.BigEndian.PutUint64(k[:], Seed(t))
	return rand.NewChaCha8(k)
}
