package transport

import (
	"context"
	"fmt"
	"testing"

	"github.com/flowmail/flowmail/internal/rawquic"
)

// BenchmarkRequestCPU reports what one request costs in CPU time
// (cpu-µs/op: requester and responder both, since they share the
// process), one request at a time, for a request of a few bytes (a
// FIND_NODE, a DELETE) and one of a shard's size (a STORE). Compare with
// internal/rawquic's BenchmarkCopyCPU, the same on bare quic-go streams:
// it is quic-go's cost per stream that makes a mail's ~575 requests cost
// more than its bytes.
func BenchmarkRequestCPU(b *testing.B) {
	for _, size := range []int{80, 33 << 10} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			ack := []byte("ok")
			srv := benchQUIC(b, 1, func(context.Context, Peer, []byte) []byte { return ack })
			cli := benchQUIC(b, 2, nil)
			to := Contact{ID: srv.Self().ID, Addr: srv.LocalAddr()}
			req := make([]byte, size)
			if _, _, err := cli.Request(b.Context(), to, req); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			rawquic.CPUPerOp(b, b.N, func() error {
				_, _, err := cli.Request(b.Context(), to, req)
				return err
			})
		})
	}
}
