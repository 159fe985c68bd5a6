package rawquic

import (
	"fmt"
	"testing"
)

// BenchmarkCopyCPU reports what one Copy costs in CPU time (cpu-µs/op,
// both ends) on a bare quic-go stream: a few bytes, a shard's size and
// 1 MiB. The baseline of transport's BenchmarkRequestCPU.
func BenchmarkCopyCPU(b *testing.B) {
	for _, size := range []int{80, 33 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			p, err := Open(b.Context())
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			payload := make([]byte, size)
			b.SetBytes(int64(size))
			CPUPerOp(b, b.N, func() error { return p.Copy(b.Context(), payload) })
		})
	}
}
