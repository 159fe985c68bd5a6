package record

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
)

// fullLog is the largest key log: MaxRotations rotations and a move.
func fullLog(b *testing.B) *Record {
	src := patternRand(0x31)
	o, dest := newOwner(b, src), newOwner(b, src)
	for i := range block.MaxRotations {
		o.rotate(b, i+1, src)
	}
	log, err := Move(o.log, o.next, dest.id, t0.Add(100*time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	return log
}

// BenchmarkEd25519Verify is the baseline: one signature check. A node's
// cost to check a record on STORE reads as a multiple of it.
func BenchmarkEd25519Verify(b *testing.B) {
	key := ed25519Key(1)
	msg := []byte("flowmail record baseline")
	sig := ed25519.Sign(key, msg)
	pub := key.Public().(ed25519.PublicKey)
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("verify")
		}
	}
}

// BenchmarkParseFullKeyLog: the worst record a node verifies, 17
// signatures (the inception block's, 15 events', the move's co-signature)
// and the small-order checks of their keys.
func BenchmarkParseFullKeyLog(b *testing.B) {
	raw := fullLog(b).Bytes()
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := Parse(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSupersedes: the decision between two full logs (after both
// are parsed), what a store adds per STORE of a slot it holds.
func BenchmarkSupersedes(b *testing.B) {
	full := fullLog(b)
	prefix := &KeyLog{Inception: full.KeyLog.Inception, Events: full.KeyLog.Events[:10]}
	held, err := Parse(prefix.Encode())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := Supersedes(held, full); err != nil {
			b.Fatal(err)
		}
	}
}
