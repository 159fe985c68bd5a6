package pow

import (
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"
)

func threadCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestZZTune(t *testing.T) {
	if os.Getenv("TUNE") == "" {
		t.Skip()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	blk := benchBlock()
	tl := newTail(blk)
	const trials = 1 << 19
	res := map[string][]float64{}
	names := []string{"floor"}
	for _, k := range kernels() {
		names = append(names, k.name)
	}

	for round := 0; round < 15; round++ {
		for _, name := range names {
			var el time.Duration
			n := trials
			if name == "floor" {
				n = trials / 8
				var in [64]byte
				t0 := threadCPU()
				for i := 0; i < n; i++ {
					binary.BigEndian.PutUint64(in[56:], uint64(i))
					x := sha512.Sum512_256(in[:])
					copy(in[:32], x[:])
					x = sha512.Sum512_256(in[:])
					in[0] ^= x[0]
				}
				el = threadCPU() - t0
			} else {
				k, _ := kernelByName(name)

				if k.lanes == 1 {
					n = trials / 8
				}
				g := newGrinder(tl, k, unreachable, 256)
				t0 := threadCPU()
				g.search(1<<40, uint64(n))
				el = threadCPU() - t0
			}
			res[name] = append(res[name], float64(n)/el.Seconds())
		}
	}
	floor := med(res["floor"])
	for _, name := range names {
		m := med(res[name])
		fmt.Printf("%-8s %8.3f M trials/cpu-s  %5.2fx floor\n", name, m/1e6, m/floor)
	}
}

func med(x []float64) float64 { s := slices.Clone(x); slices.Sort(s); return s[len(s)/2] }
