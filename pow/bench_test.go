package pow

import (
	"context"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/flowmail/flowmail/block"
)

// Benchmarks report "trials/s": one trial is one nonce hashed twice and
// tested. Compare paths only by ratio within one run, e.g.
//
//	go test ./pow -run '^$' -bench . -benchtime=2s -count=3
//
// BenchmarkBaselineFloor is the unit: the Go standard library hashing two
// 64-byte inputs per trial, the best a grinder built on crypto/sha512 can
// do. BenchmarkBaselineNaive hashes the whole index block per trial.

// benchBlock is a realistic index block: 1179 + 128·j bytes (j = 2), so
// its length is 27 mod 128 like every index block the mail code builds.
func benchBlock() []byte {
	b := make([]byte, block.MinIndexSize+2*chunk)
	for i := range b {
		b[i] = byte(i * 31)
	}
	return b
}

// unreachable is a target and difficulty no nonce meets: 256 bits of a
// fixed ID (a 2^-256 chance per trial).
var unreachable = block.ID{0xde, 0xad, 0xbe, 0xef}

// benchSolve grinds b.N trials through Solve at an unreachable
// difficulty, cancelling once the workers have taken b.N nonces, and
// reports the trials actually run over the wall time, start-up and
// shut-down included.
func benchSolve(b *testing.B, workers int, kernelName string) {
	blk := benchBlock()
	var taken atomic.Uint64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := config{kernel: kernelName, batch: func(_ int, _, n uint64) {
		if taken.Add(n) >= uint64(b.N) {
			cancel()
		}
	}}
	b.ReportAllocs()
	b.ResetTimer()
	_, err := solve(ctx, blk, unreachable, MaxBits, Options{Workers: workers}, cfg)
	b.StopTimer()
	if !errors.Is(err, context.Canceled) {
		b.Fatalf("Solve at an unreachable difficulty: %v", err)
	}
	// Workers check ctx before taking a batch and run every batch they
	// take in full, so taken is the number of trials run.
	b.ReportMetric(float64(taken.Load())/b.Elapsed().Seconds(), "trials/s")
}

func BenchmarkSolve(b *testing.B) {
	b.Run("workers=1", func(b *testing.B) { benchSolve(b, 1, "") })
	b.Run("workers=all", func(b *testing.B) { benchSolve(b, 0, "") })
}

// BenchmarkKernel runs Solve with each kernel this machine has.
func BenchmarkKernel(b *testing.B) {
	for _, k := range kernels() {
		b.Run(k.name+"/workers=1", func(b *testing.B) { benchSolve(b, 1, k.name) })
		b.Run(k.name+"/workers=all", func(b *testing.B) { benchSolve(b, 0, k.name) })
	}
}

func BenchmarkBaselineNaive(b *testing.B) {
	blk := benchBlock()
	b.ReportAllocs()
	var sink byte
	for i := 0; b.Loop(); i++ {
		binary.BigEndian.PutUint64(blk[len(blk)-8:], uint64(i))
		inner := sha512.Sum512_256(blk)
		id := sha512.Sum512_256(inner[:])
		sink ^= id[0]
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "trials/s")
	_ = sink
}

func BenchmarkBaselineFloor(b *testing.B) {
	var in [64]byte
	b.ReportAllocs()
	var sink byte
	for i := 0; b.Loop(); i++ {
		binary.BigEndian.PutUint64(in[56:], uint64(i))
		x := sha512.Sum512_256(in[:])
		copy(in[:32], x[:])
		id := sha512.Sum512_256(in[:])
		sink ^= id[0]
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "trials/s")
	_ = sink
}
