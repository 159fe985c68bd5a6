//go:build unix

package rawquic

import (
	"syscall"
	"time"
)

// ProcessCPU is the CPU time the process has used, user and system, for
// benchmarks that report CPU per operation beside wall time.
func ProcessCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// CPUPerOp runs op b.N times after a reset timer and reports the
// process's CPU time per op as cpu-µs/op.
func CPUPerOp(b interface {
	ResetTimer()
	Fatal(...any)
	ReportMetric(float64, string)
}, n int, op func() error) {
	b.ResetTimer()
	start, err := ProcessCPU()
	if err != nil {
		b.Fatal(err)
	}
	for range n {
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
	end, err := ProcessCPU()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64((end-start).Microseconds())/float64(n), "cpu-µs/op")
}
