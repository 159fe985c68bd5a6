// Command rssprobe measures the memory of a process holding a Badger block
// store: it fills a fresh store with n blocks from concurrent Puts (each
// durable, as in a node), reads them all back, and reports VmRSS and
// VmHWM from /proc/self/status and the Go heap.
//
//	go run ./blockstore/internal/rssprobe -n 100000 -size 4096
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
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
	dir := fs.String("dir", "", "store directory (default: a new temporary one, removed afterwards)")
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
	report(out, "start")
	s, err := blockstore.OpenBadger(*dir, blockstore.Config{Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		return err
	}
	defer s.Close()

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
				id, err := s.Put(ctx, b, time.Hour, blockstore.PutOptions{})
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
	fmt.Fprintf(out, "stored %d blocks of %d bytes in %v: %.0f blocks/s\n", *n, *size, elapsed.Round(time.Millisecond), float64(*n)/elapsed.Seconds())
	report(out, "after fill")

	start = time.Now()
	for _, id := range ids {
		if _, _, err := s.Get(ctx, id); err != nil {
			return err
		}
	}
	elapsed = time.Since(start)
	fmt.Fprintf(out, "read them back in %v: %.0f blocks/s, one goroutine\n", elapsed.Round(time.Millisecond), float64(*n)/elapsed.Seconds())
	st := s.Stats()
	if st.Blocks != *n {
		return fmt.Errorf("store counts %d blocks, want %d", st.Blocks, *n)
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
