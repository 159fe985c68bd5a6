package pow

import (
	"crypto/sha512"
	"encoding/binary"
	"os"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"
)

// TestRatesPerCPUSecond measures trials per second of the measuring
// thread's own CPU time, for the baselines and every kernel, in
// interleaved rounds. On a shared machine wall-clock benchmarks move with
// the neighbours' load; thread CPU time moves much less. It prints
// medians and ratios, asserts nothing, and runs only on request:
//
//	FLOWMAIL_POWRATES=1 go test ./pow -run RatesPerCPUSecond -v
func TestRatesPerCPUSecond(t *testing.T) {
	if os.Getenv("FLOWMAIL_POWRATES") == "" {
		t.Skip("set FLOWMAIL_POWRATES=1 to measure")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	blk := benchBlock()
	tl := newTail(blk)
	type path struct {
		name   string
		trials int
		run    func(n int)
	}
	paths := []path{
		{"floor", 1 << 16, func(n int) {
			var in [64]byte
			for i := range n {
				binary.BigEndian.PutUint64(in[56:], uint64(i))
				x := sha512.Sum512_256(in[:])
				copy(in[:32], x[:])
				x = sha512.Sum512_256(in[:])
				in[0] ^= x[0]
			}
		}},
		{"naive", 1 << 14, func(n int) {
			for i := range n {
				binary.BigEndian.PutUint64(blk[len(blk)-8:], uint64(i))
				x := sha512.Sum512_256(blk)
				x = sha512.Sum512_256(x[:])
				blk[0] ^= x[0]
			}
		}},
	}
	for _, k := range kernels() {
		paths = append(paths, path{k.name, 1 << 16 * k.lanes, func(n int) {
			g := newGrinder(tl, k, unreachable, MaxBits)
			if _, _, ok := g.search(1<<40, uint64(n)); ok {
				t.Fatal("met an unreachable target")
			}
		}})
	}
	rates := map[string][]float64{}
	for range 15 {
		for _, p := range paths {
			t0 := threadCPU(t)
			p.run(p.trials)
			rates[p.name] = append(rates[p.name], float64(p.trials)/(threadCPU(t)-t0).Seconds())
		}
	}
	floor, naive := median(rates["floor"]), median(rates["naive"])
	for _, p := range paths {
		m := median(rates[p.name])
		t.Logf("%-7s %7.2f M trials/CPU-s  %5.2fx floor  %5.2fx naive", p.name, m/1e6, m/floor, m/naive)
	}
}

func threadCPU(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_THREAD, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(x []float64) float64 {
	s := slices.Clone(x)
	slices.Sort(s)
	return s[len(s)/2]
}
