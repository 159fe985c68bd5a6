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

	// NodeBudget and GroupBudget are how many bytes one source
	// (PutOptions.Source: its Node and its Group key) may have had
	// written, decaying with BudgetHalfLife, and still make room by
	// evicting other blocks; past that its Puts are refused while the
	// store is full (ErrOverBudget). 0: QuotaBytes/16 and QuotaBytes/4;
	// negative: no budget. Without a quota nothing is evicted and no
	// budget applies.
	NodeBudget, GroupBudget int64
	// BudgetHalfLife is how fast a source's charges decay (0: one hour).
	BudgetHalfLife time.Duration

	// Footprint sizes the Badger store's memory (FootprintNode: what a
	// node runs with).
	Footprint Footprint

	// SweepInterval is how often the Badger store removes expired blocks
	// and their bookkeeping (0: one minute).
	SweepInterval time.Duration
	// GCInterval is how often the Badger store runs value-log garbage
	// collection (0: ten minutes). It also runs it whenever the blocks
	// removed since the last run add up to gcTrigger bytes.
	GCInterval time.Duration
	// SyncInterval is how long a change may wait before the Badger store
	// puts it on disk (0: DefaultSyncInterval); a Put with
	// PutOptions.Sync does not wait.
	SyncInterval time.Duration
}

const (
	defaultSweepInterval = time.Minute
	defaultGCInterval    = 10 * time.Minute
	// DefaultSyncInterval is how long the Badger store lets changes
	// wait in the page cache (docs/PROTOCOL.md section 5).
	DefaultSyncInterval = time.Second
	// BudgetHalfLife is how fast a source's charges decay
	// (docs/PROTOCOL.md section 5.2).
	BudgetHalfLife = time.Hour
	// A source may make a full store evict up to quota/NodeBudgetShare
	// (one node ID) or quota/GroupBudgetShare (one IP group) bytes per
	// half-life.
	NodeBudgetShare  = 16
	GroupBudgetShare = 4
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
	if c.SyncInterval <= 0 {
		c.SyncInterval = DefaultSyncInterval
	}
	if c.BudgetHalfLife <= 0 {
		c.BudgetHalfLife = BudgetHalfLife
	}
	budget := func(b, share int64) int64 {
		switch {
		case c.QuotaBytes <= 0 || b < 0:
			return 0 // none
		case b == 0:
			return max(c.QuotaBytes/share, 1)
		}
		return b
	}
	c.NodeBudget = budget(c.NodeBudget, NodeBudgetShare)
	c.GroupBudget = budget(c.GroupBudget, GroupBudgetShare)
	return c
}

// Footprint is how much memory a Badger store may take.
type Footprint uint8

const (
	// FootprintNode is for a node's one store: 4 MiB memtables, value-log
	// files of up to 64 MiB.
	FootprintNode Footprint = iota
	// FootprintShared is for one of many stores in one process (a
	// testnet's nodes): 2 MiB memtables, value-log files of at most 8 MiB,
	// fewer goroutines.
	FootprintShared
)
