package blockstore

import (
	"log/slog"
	"time"

	"github.com/flowmail/flowmail/block"
)

// Config is shared by both implementations; the memory store ignores the
// Badger-only fields.
type Config struct {
	// Self is the node's own ID: under quota pressure the blocks farthest
	// from it (XOR distance) go first.
	Self block.ID
	// QuotaBytes bounds the sum of block sizes held; 0 means no quota.
	QuotaBytes int64
	// Now is the store's clock (nil: time.Now). The memory store reads
	// nothing else, so it runs on a simulator's virtual clock. The Badger
	// store uses it for stored-at, expiry and sweeps; Badger's own TTL
	// runs on the wall clock and can only drop a block earlier.
	Now func() time.Time
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
	if c.Now == nil {
		c.Now = time.Now
	}
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
