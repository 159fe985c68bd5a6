package onion

import (
	"crypto/hpke"
	"testing"
)

// benchPool is how many distinct packets a benchmark cycles through; the
// relay is replaced (outside the timer) before a packet would repeat, so
// none is dropped as a replay.
const benchPool = 256

// BenchmarkRelayPacket measures packets per second one relay takes in,
// opens, peels and hands on (zero delay): Receive, Process and Due.
// Compare with BenchmarkRawHPKEOpen of the same run.
func BenchmarkRelayPacket(b *testing.B) {
	rs := []*testRelay{newTestRelay(b, 0), newTestRelay(b, 1), newTestRelay(b, 2)}
	pool := make([][]byte, benchPool)
	for i := range pool {
		pool[i] = rawPacket(b, forwardSpecs(b, rs, 0), pingBody(b))
	}
	id := rs[0].ident
	newRelay := func() *Relay {
		r, err := NewRelay(RelayConfig{ID: id.ID(), Key: id.EncryptionKey(), MinWork: testWork})
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	r := newRelay()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%benchPool == 0 && i > 0 {
			b.StopTimer()
			r = newRelay()
			b.StartTimer()
		}
		if err := r.Receive(testNow, pool[i%benchPool]); err != nil {
			b.Fatal(err)
		}
		if _, err := r.Process(testNow); err != nil {
			b.Fatal(err)
		}
		if o, ok := r.Due(testNow); !ok || len(o.Forward.Packet) != PacketSize {
			b.Fatal("nothing handed on")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packets/s")
}

// BenchmarkRawHPKEOpen is the baseline: one single-shot HPKE open of the
// identity suite over a ciphertext as long as a packet (a decapsulation
// and 32 KiB of ChaCha20-Poly1305).
func BenchmarkRawHPKEOpen(b *testing.B) {
	id := testIdentity(b, 0)
	sealed, err := id.Public().Seal(labelLayer, make([]byte, PacketSize-EncSize-TagSize))
	if err != nil {
		b.Fatal(err)
	}
	if len(sealed) != PacketSize {
		b.Fatalf("sealed %d bytes", len(sealed))
	}
	key := id.EncryptionKey()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := hpke.Open(key, layerKDF, layerAEAD, []byte(labelLayer), sealed); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packets/s")
}
