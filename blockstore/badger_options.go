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
// 256 KiB. Measurements: see the package's report in docs and
// /work/shared/MEASUREMENTS.md.
func badgerOptions(dir string, logger *slog.Logger) badger.Options {
	return badger.DefaultOptions(dir).
		// A Put is acknowledged once on disk; the writer batches
		// concurrent Puts into one transaction, so they share a sync.
		WithSyncWrites(true).
		// Blocks (all but the tiniest data blocks) go to the value log;
		// the LSM tree holds only keys and small metadata. Shrinking the
		// memtables while 4 KiB values stay inline drops writes to ~7k/s.
		WithValueThreshold(256).
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBaseTableSize(2 << 20).
		WithBaseLevelSize(8 << 20).
		WithBlockCacheSize(4 << 20).
		WithIndexCacheSize(0).
		// Keys are hashes and blocks are ciphertext: nothing compresses.
		WithCompression(options.None).
		// Small value-log files: garbage collection rewrites whole files.
		WithValueLogFileSize(64 << 20).
		WithNumCompactors(2).
		WithNumGoroutines(2).
		// One writer goroutine makes every change: no conflicts to detect.
		WithDetectConflicts(false).
		WithMetricsEnabled(false).
		WithLogger(badgerLogger{logger})
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
