package blockstore

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// badgerOptions tunes Badger for a small machine holding blocks of up to
// 256 KiB.
//
// Measured with blockstore/internal/rssprobe (50,000 blocks of 4 KiB, 16
// concurrent durable Puts, 2 shared cores; throughput varied up to 8x with
// the load of the machine, so variants ran alternately and are compared
// pairwise; memory is after a GC, anonymous memory only):
//
//	these options                         4.4-11.7k blocks/s, 18-31 MB
//	same, 8 MiB memtables, 2 MiB tables,  0.8-6.2k blocks/s,  13-38 MB
//	  4 MiB block cache
//	Badger defaults (64 MiB memtables x5, 7.5-9.0k blocks/s,  23-26 MB, but
//	  256 MiB block cache), threshold 256 B                   111 MB anonymous
//	                                                          right after the fill
//	4 KiB values inline (threshold 64 KiB), 0.9-3.4k blocks/s, 96-104 MB
//	  4 MiB memtables
//
// 100,000 blocks of 4 KiB: see the package's report; the value log is
// memory-mapped, so VmRSS also counts its cached pages (file-backed,
// reclaimable), about the size of the data written.
func badgerOptions(dir string, cfg Config) badger.Options {
	o := badger.DefaultOptions(dir).
		// The writer syncs: at once for a Sync Put, else on
		// SyncInterval (a STORE from a peer need not wait for the disk:
		// docs/PROTOCOL.md section 5). It batches concurrent Puts into
		// one transaction, so they share a sync.
		WithSyncWrites(false).
		// Blocks (all but the tiniest data blocks) go to the value log;
		// the LSM tree holds only keys and small metadata (about 5 keys,
		// 300 bytes per block). Small memtables are only safe because of
		// this: with 4 KiB values inline they fill and flush constantly.
		WithValueThreshold(256).
		WithMemTableSize(4 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBaseTableSize(1 << 20).
		WithBaseLevelSize(8 << 20).
		// Tables are uncompressed and memory-mapped: a block cache only
		// copies what the page cache holds (at 4 MiB it hit a third of the
		// time and Get ran slower than without it).
		WithBlockCacheSize(0).
		WithIndexCacheSize(0).
		// Keys are hashes and blocks are ciphertext: nothing compresses.
		WithCompression(options.None).
		// Small value-log files: garbage collection rewrites whole files,
		// and up to a file's worth of garbage waits for it (valueLogFileSize).
		WithValueLogFileSize(valueLogFileSize(cfg)).
		WithNumCompactors(2).
		WithNumGoroutines(2).
		// One writer goroutine makes every change: no conflicts to detect.
		WithDetectConflicts(false).
		WithMetricsEnabled(false).
		WithLogger(badgerLogger{cfg.Logger})
	if cfg.Footprint == FootprintShared {
		o = sharedFootprint(o)
	}
	return o
}

// sharedFootprint shrinks what each store holds in memory and maps, for
// many stores in one process (a testnet): the memtable and its
// write-ahead file, the tables, the value-log files (each is mapped at
// twice its size while written: valueLogFileSize), and Badger's
// goroutines. Writes flush
// more often; nothing a real node does changes.
func sharedFootprint(o badger.Options) badger.Options {
	return o.
		WithMemTableSize(2 << 20).
		WithBaseTableSize(512 << 10).
		WithBaseLevelSize(4 << 20).
		WithNumGoroutines(1)
}

// valueLogFileSize is a sixteenth of the quota, within Badger's minimum
// of 1 MiB and 64 MiB: a collection rewrites whole files, and the disk
// holds up to about three files beyond the live blocks (the one being
// written, the garbage that triggers a collection, and what a rewrite
// copies), which must stay a small part of the quota (docs/PROTOCOL.md
// section 5.2).
func valueLogFileSize(cfg Config) int64 {
	const lo = 1 << 20
	hi := int64(64 << 20)
	if cfg.Footprint == FootprintShared {
		hi = 8 << 20
	}
	if cfg.QuotaBytes <= 0 {
		return hi
	}
	return min(max(cfg.QuotaBytes/16, lo), hi)
}

// badgerLogger passes Badger's warnings and errors to slog; its info and
// debug chatter (every compaction, every file opened) is dropped.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) log(level slog.Level, format string, args []any) {
	if b.l.Enabled(context.Background(), level) {
		b.l.Log(context.Background(), level, "badger: "+strings.TrimSpace(fmt.Sprintf(format, args...)))
	}
}

func (b badgerLogger) Errorf(format string, args ...any)   { b.log(slog.LevelError, format, args) }
func (b badgerLogger) Warningf(format string, args ...any) { b.log(slog.LevelWarn, format, args) }
func (b badgerLogger) Infof(string, ...any)                {}
func (b badgerLogger) Debugf(string, ...any)               {}
