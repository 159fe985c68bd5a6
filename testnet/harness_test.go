package testnet

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

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
