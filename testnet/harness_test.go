package testnet

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
)

// testSeed is the seed of a randomised test: FLOWMAIL_SEED when set,
// else a fresh one. It is logged, and printed again if the test fails,
// with the command that replays it.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := rand.Uint64()
	if s := os.Getenv("FLOWMAIL_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("FLOWMAIL_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d", seed)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replay with: FLOWMAIL_SEED=%d go test ./testnet -run '^%s$'", seed, t.Name())
		}
	})
	return seed
}

// hangGuard is the context of a test that runs a network: it ends with
// the test, or after minutes if something hangs. Every wait in these
// tests is for an event; none relies on this deadline to pass.
func hangGuard(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// testLogger sends the network's warnings to the test's log, shown when
// the test fails (or with -v): a node that could not join says why.
// Every node must be closed before the test returns.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tlogWriter struct{ t *testing.T }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
