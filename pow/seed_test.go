package pow

import (
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
)

// testRand returns the randomness of a test: a fixed default seed keeps CI
// runs identical, FLOWMAIL_SEED explores others. The seed is logged, so a
// failing run prints how to replay it.
func testRand(t testing.TB) *rand.Rand {
	t.Helper()
	seed := uint64(20261201)
	if s := os.Getenv("FLOWMAIL_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("FLOWMAIL_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (replay: FLOWMAIL_SEED=%d go test ./pow -run '^%s$')", seed, seed, t.Name())
	return rand.New(rand.NewPCG(seed, 0))
}
