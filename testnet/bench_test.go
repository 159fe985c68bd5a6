package testnet

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/rawquic"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
)

// benchNet starts n full nodes and a client for a benchmark.
func benchNet(b *testing.B, nodes int) (*Net, context.Context) {
	b.Helper()
	ctx := b.Context()
	net, err := Start(ctx, Config{Nodes: nodes, Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { net.Close() })
	return net, ctx
}

// oneMiBMail is a mail whose RFC 5322 form is about 1 MiB, most of it a
// random attachment: base64 in the message, which the body compresses
// back to about 3/4 of the message (spec 9.3), and no further.
func oneMiBMail(b *testing.B, from, to *User) []byte {
	b.Helper()
	att := make([]byte, 3<<18) // 768 KiB, about 1 MiB once base64-encoded
	crand.Read(att)
	msg, err := mail.Compose(&mail.Message{
		From: mail.Mailbox{Address: from.ID()}, To: []mail.Mailbox{{Address: to.ID()}},
		Subject: "bench", Text: "bench\n", Attachments: []mail.Attachment{{Name: "a.bin", Data: att}}, Date: time.Now(),
	}, crand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	return msg
}

// BenchmarkSendFetch1MiB sends a 1 MiB mail and fetches it, through
// client nodes of a 20-node loopback network, with D = 4 so the proof of
// work does not dominate. Compare with BenchmarkRawQUICCopy1MiB. It
// reports stored/byte: what all the nodes' stores took for a mail,
// divided by its RFC 5322 size.
func BenchmarkSendFetch1MiB(b *testing.B) {
	net, ctx := benchNet(b, 20)
	sender, err := net.Client(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer sender.Close()
	fetcher, err := net.Client(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer fetcher.Close()
	dir := b.TempDir()
	alice, err := NewUser(filepath.Join(dir, "alice"), 4)
	if err != nil {
		b.Fatal(err)
	}
	bob, err := NewUser(filepath.Join(dir, "bob"), 4)
	if err != nil {
		b.Fatal(err)
	}
	if err := sender.Put(ctx, bob.Public().Block, block.MaxLifetime); err != nil {
		b.Fatal(err)
	}
	key, err := delivery.LookupPubkey(ctx, sender, bob.ID())
	if err != nil {
		b.Fatal(err)
	}
	msg := oneMiBMail(b, alice, bob)
	codec, err := mail.NewCodec()
	if err != nil {
		b.Fatal(err)
	}
	defer codec.Close()
	st, err := mailbox.OpenState(bob.StateDir())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()

	held := func() (sum int64) {
		for _, nd := range net.Running() {
			sum += nd.Store().Stats().Bytes
		}
		return sum
	}
	var stored int64
	var sending, fetching, sendCPU, fetchCPU time.Duration
	var cpuErr error // getrusage(2) is missing on this platform
	cpuNow := func() time.Duration {
		d, err := rawquic.ProcessCPU()
		if err != nil {
			cpuErr = err
		}
		return d
	}
	sentBefore, fetchedBefore := sender.DHT().Stats().RequestsSent, fetcher.DHT().Stats().RequestsSent
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	for range b.N {
		in := mail.BuildInput{Sender: alice.Identity, Recipients: []*identity.PublicKey{key}, Message: bytes.NewReader(msg), Size: int64(len(msg)), Now: time.Now()}
		before := held()
		cpu0 := cpuNow()
		start := time.Now()
		if _, err := delivery.Send(ctx, sender, codec, in, delivery.SendOptions{}); err != nil {
			b.Fatal(err)
		}
		sent := time.Now()
		cpu1 := cpuNow()
		sendCPU += cpu1 - cpu0
		sending += sent.Sub(start)
		stored += held() - before
		rep, err := delivery.Fetch(ctx, fetcher, codec, bob.Identity, st, delivery.FetchOptions{Maildir: bob.Maildir(), Now: time.Now()})
		if err != nil || len(rep.Delivered) != 1 {
			b.Fatalf("fetch: %v, %+v", err, rep)
		}
		fetching += time.Since(sent)
		cpu2 := cpuNow()
		fetchCPU += cpu2 - cpu1
	}
	// The process's CPU time (all nodes run in it) per phase: against the
	// phase's wall time it says how busy the cores were.
	if cpuErr == nil {
		b.ReportMetric(float64(sendCPU.Microseconds())/1000/float64(b.N), "send-cpu-ms/op")
		b.ReportMetric(float64(fetchCPU.Microseconds())/1000/float64(b.N), "fetch-cpu-ms/op")
	}
	// Where the time goes: the send (build, grind, stores) and the fetch
	// (list, gets, open, delete) of one mail.
	b.ReportMetric(float64(sending.Milliseconds())/float64(b.N), "send-ms/op")
	b.ReportMetric(float64(fetching.Milliseconds())/float64(b.N), "fetch-ms/op")
	// Requests each client sent per mail: lookups, stores, gets, deletes.
	b.ReportMetric(float64(sender.DHT().Stats().RequestsSent-sentBefore)/float64(b.N), "send-requests/op")
	b.ReportMetric(float64(fetcher.DHT().Stats().RequestsSent-fetchedBefore)/float64(b.N), "fetch-requests/op")
	// Bytes every store took for one mail (index, data and parity blocks
	// at their holders) per byte of the RFC 5322 message.
	b.ReportMetric(float64(stored)/float64(b.N)/float64(len(msg)), "stored/byte")
}

// BenchmarkRawQUICCopy1MiB moves the bytes of BenchmarkSendFetch1MiB's
// mail once over a plain quic-go stream on loopback: the floor a send and
// fetch could approach.
func BenchmarkRawQUICCopy1MiB(b *testing.B) {
	p, err := rawquic.Open(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	payload := make([]byte, 1<<20)
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	for range b.N {
		if err := p.Copy(b.Context(), payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLookup runs iterative lookups of random IDs from a client of a
// 30-node loopback network and reports lookups per second and the median
// latency.
func BenchmarkLookup(b *testing.B) {
	net, ctx := benchNet(b, 30)
	c, err := net.Client(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	lat := make([]time.Duration, 0, b.N)
	start := time.Now()
	b.ResetTimer()
	for range b.N {
		var target block.ID
		crand.Read(target[:])
		t0 := time.Now()
		if _, err := c.Lookup(ctx, target); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "lookups/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "median-ms")
}
