package blockstore

import (
	"log/slog"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/internal/clock"
)

// Config is shared by both implementations; the memory store ignores the
// Badger-only fields.
type Config struct {
	// Self is the node's own ID: under quota pressure the blocks farthest
	// from it (XOR distance) go first.
	Self block.ID
	// QuotaBytes bounds the sum of block sizes held; 0 means no quota.
	QuotaBytes int64
	// Clock is the store's one source of time (nil: clock.Real{}). The
	// memory store reads nothing else, so it runs on a simulator's
	// virtual clock. The Badger store uses it for stored-at, expiry,
	// sweeps and its maintenance tickers; Badger's own TTL runs on the
	// wall clock and can only drop a block earlier.
	Clock clock.Clock
	// Logger receives warnings, including Badger's own (nil: discard).
	Logger *slog.Logger

	// SweepInterval is how often the Badger store removes expired blocks
	// and their bookkeeping (0: one minute).
	SweepInterval time.Duration
	// GCInterval is how often the Badger store runs value-log garbage
	// collection (0: ten minutes).
	GCInterval time.Duration
}

const (
	defaultSweepInterval = time.Minute
	defaultGCInterval    = 10 * time.Minute
)

func (c Config) withDefaults() Config {
	c.Clock = clock.Or(c.Clock)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = defaultSweepInterval
	}
	if c.GCInterval <= 0 {
		c.GCInterval = defaultGCInterval
	}
	return c
}
