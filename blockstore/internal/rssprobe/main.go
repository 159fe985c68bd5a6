// Command rssprobe measures the memory of a process holding Badger block
// stores: it fills -stores fresh stores with n blocks in all from
// concurrent Puts (each durable, as in a node; block i goes to store i mod
// -stores), reads them all back, and reports VmRSS and VmHWM from
// /proc/self/status and the Go heap.
//
//	go run ./blockstore/internal/rssprobe -n 100000 -size 4096
//	go run ./blockstore/internal/rssprobe -stores 20 -shared -n 3200 -size 65536
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/blockstore"
	"github.com/flowmail/flowmail/blockstore/internal/memstat"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "rssprobe:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("rssprobe", flag.ContinueOnError)
	n := fs.Int("n", 100_000, "blocks to store")
	size := fs.Int("size", 4096, "bytes per block")
	workers := fs.Int("workers", 16, "concurrent Puts")
	memprofile := fs.String("memprofile", "", "write a heap profile here at the end")
	dir := fs.String("dir", "", "directory of the stores (default: a new temporary one, removed afterwards)")
	stores := fs.Int("stores", 1, "stores open in this process")
	shared := fs.Bool("shared", false, "open them with blockstore.FootprintShared (as a testnet does)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *size <= block.HeaderSize+8 || *size > block.MaxBlockSize {
		return fmt.Errorf("-size %d outside %d..%d", *size, block.HeaderSize+9, block.MaxBlockSize)
	}
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "rssprobe")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		*dir = tmp
	}
	if *stores < 1 {
		return fmt.Errorf("-stores %d, want at least 1", *stores)
	}
	report(out, "start")
	cfg := blockstore.Config{Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	if *shared {
		cfg.Footprint = blockstore.FootprintShared
	}
	all := make([]blockstore.Store, *stores)
	for i := range all {
		s, err := blockstore.OpenBadger(filepath.Join(*dir, fmt.Sprint(i)), cfg)
		if err != nil {
			return err
		}
		defer s.Close()
		all[i] = s
	}
	report(out, "opened")

	base := block.Data{Payload: make([]byte, *size-block.HeaderSize)}.Encode()
	ids := make([]block.ID, *n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, *workers)
	start := time.Now()
	for range *workers {
		wg.Go(func() {
			b := append([]byte(nil), base...)
			for i := next.Add(1) - 1; i < int64(*n); i = next.Add(1) - 1 {
				binary.BigEndian.PutUint64(b[len(b)-8:], uint64(i)+1)
				id, err := all[i%int64(len(all))].Put(ctx, b, time.Hour, blockstore.PutOptions{})
				if err != nil {
					errs <- err
					return
				}
				ids[i] = id
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	elapsed := time.Since(start)
	fmt.Fprintf(out, "stored %d blocks of %d bytes (%.0f MB) in %d stores in %v: %.0f blocks/s\n", *n, *size, float64(*n)*float64(*size)/1e6, *stores, elapsed.Round(time.Millisecond), float64(*n)/elapsed.Seconds())
	report(out, "after fill")

	start = time.Now()
	for i, id := range ids {
		if _, _, err := all[i%len(all)].Get(ctx, id); err != nil {
			return err
		}
	}
	elapsed = time.Since(start)
	fmt.Fprintf(out, "read them back in %v: %.0f blocks/s, one goroutine\n", elapsed.Round(time.Millisecond), float64(*n)/elapsed.Seconds())
	held := 0
	for _, s := range all {
		held += s.Stats().Blocks
	}
	if held != *n {
		return fmt.Errorf("stores count %d blocks, want %d", held, *n)
	}
	report(out, "after reads")
	// What stays once garbage is collected and returned to the system.
	runtime.GC()
	debug.FreeOSMemory()
	report(out, "after GC")
	if *memprofile != "" {
		f, err := os.Create(*memprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		runtime.GC()
		return pprof.WriteHeapProfile(f)
	}
	return nil
}

// report prints the process's memory figures.
func report(out io.Writer, when string) {
	fmt.Fprintf(out, "%-12s %s\n", when, memstat.Report())
}
