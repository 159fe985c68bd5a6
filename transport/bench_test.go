package transport

import (
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"

	"github.com/quic-go/quic-go"

	"github.com/flowmail/flowmail/block"
)

// benchPayload is one full block.
const benchPayload = block.MaxBlockSize

// BenchmarkBlockTransfer sends block-sized requests with small responses
// over the QUIC transport on loopback: one request at a time, and several
// in flight as a node's replication does. Compare with
// BenchmarkRawQUICStream.
func BenchmarkBlockTransfer(b *testing.B) {
	for _, inFlight := range []int{1, 4, 16} {
		b.Run(map[int]string{1: "Sequential", 4: "InFlight4", 16: "InFlight16"}[inFlight], func(b *testing.B) {
			ack := []byte("stored")
			srv := benchQUIC(b, 1, func(context.Context, Peer, []byte) []byte { return ack })
			cli := benchQUIC(b, 2, nil)
			to := Contact{ID: srv.Self().ID, Addr: srv.LocalAddr()}
			req := make([]byte, benchPayload)
			if _, _, err := cli.Request(b.Context(), to, req); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(benchPayload)
			b.ReportAllocs()
			b.ResetTimer()
			jobs := make(chan struct{})
			var wg sync.WaitGroup
			for range inFlight {
				wg.Go(func() {
					for range jobs {
						if _, _, err := cli.Request(b.Context(), to, req); err != nil {
							b.Error(err)
						}
					}
				})
			}
			for range b.N {
				jobs <- struct{}{}
			}
			close(jobs)
			wg.Wait() // timed: the last requests complete inside the measurement
		})
	}
}

func benchQUIC(b *testing.B, idn int, h Handler) *QUIC {
	b.Helper()
	q, err := ListenQUIC(b.Context(), QUICConfig{Identity: testIdentity(b, idn), Network: testNetwork, ListenAddr: "127.0.0.1:0", Handler: h})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { q.Close() })
	return q
}

// BenchmarkRawQUICStream is the baseline: the same bytes written to one
// long plain quic-go stream (default quic.Config, the same TLS) between
// two quic-go endpoints on loopback.
func BenchmarkRawQUICStream(b *testing.B) {
	cert, err := certificate(testIdentity(b, 1).SigningKey())
	if err != nil {
		b.Fatal(err)
	}
	serverTLS, clientTLS := tlsConfigs(cert)
	listenUDP := func() *net.UDPConn {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	su, cu := listenUDP(), listenUDP()
	st, ct := &quic.Transport{Conn: su}, &quic.Transport{Conn: cu}
	defer func() { ct.Close(); st.Close(); cu.Close(); su.Close() }()
	ln, err := st.Listen(serverTLS, &quic.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()

	received := make(chan int64, 1)
	go func() {
		qc, err := ln.Accept(b.Context())
		if err != nil {
			received <- -1
			return
		}
		defer qc.CloseWithError(0, "")
		s, err := qc.AcceptStream(b.Context())
		if err != nil {
			received <- -1
			return
		}
		n, _ := io.Copy(io.Discard, s)
		received <- n
	}()

	qc, err := ct.Dial(b.Context(), su.LocalAddr(), clientTLS, &quic.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer qc.CloseWithError(0, "")
	s, err := qc.OpenStreamSync(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, benchPayload)
	b.SetBytes(benchPayload)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := s.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	s.Close()
	// Timed until the last byte arrived, as for BenchmarkBlockTransfer.
	if got, sent := <-received, int64(b.N)*benchPayload; got != sent {
		b.Fatalf("server read %d bytes, client sent %d", got, sent)
	}
}
