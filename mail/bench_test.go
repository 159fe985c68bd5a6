package mail

import (
	"bytes"
	"context"
	"crypto/sha512"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/klauspost/reedsolomon"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

const benchSize = 1 << 20

// benchMessages are 1 MiB mails from alice: a random body (photos,
// archives: zstd gives up quickly) and a text body (compresses ~4x).
func benchMessages(b *testing.B, alice, bob *identity.Identity) map[string][]byte {
	head := fmt.Appendf(nil, "From: <%s>\r\nTo: <%s>\r\nSubject: bench\r\n\r\n", HeaderAddress(alice.ID()), HeaderAddress(bob.ID()))
	text := bytes.Repeat([]byte("The quick brown fox jumps over the lazy dog, again and again; "), benchSize/62+1)
	for i := 0; i < len(text); i += 997 {
		text[i] = byte('a' + i%26) // enough variety that it is not one long match
	}
	return map[string][]byte{
		"random": append(bytes.Clone(head), randomBytes(benchSize-len(head), 1)...),
		"text":   append(bytes.Clone(head), text[:benchSize-len(head)]...),
	}
}

// BenchmarkBuild1MiB: sign, compress, encrypt, erasure-code and seal a
// 1 MiB mail to one recipient; difficulty 0 keeps the proof of work out.
// Build uses every core it is given (it hashes the message beside
// compressing it); -cpu 1 measures it on one.
func BenchmarkBuild1MiB(b *testing.B) {
	c := testCodec(b)
	alice, bob := testIdentity(b, seedAlice, 0), testIdentity(b, seedBob, 0)
	for _, name := range []string{"random", "text"} {
		msg := benchMessages(b, alice, bob)[name]
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				in := BuildInput{Sender: alice, Recipients: publicKeys(bob), Message: bytes.NewReader(msg), Size: int64(len(msg)), Now: testNow}
				out, err := c.Build(context.Background(), in, BuildOptions{})
				if err != nil {
					b.Fatal(err)
				}
				out.Release()
			}
		})
	}
}

// BenchmarkOpen1MiB: open the index block, check the data shards,
// decrypt, decompress and verify a 1 MiB mail.
func BenchmarkOpen1MiB(b *testing.B) {
	c := testCodec(b)
	alice, bob := testIdentity(b, seedAlice, 0), testIdentity(b, seedBob, 0)
	for _, name := range []string{"random", "text"} {
		msg := benchMessages(b, alice, bob)[name]
		b.Run(name, func(b *testing.B) {
			built := build(b, c, alice, msg, 1, bob)
			x := built.Index[0]
			blocks := blocksOf(built.Data)
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				// What a recipient does once the shards are in: open the
				// index block, check the data shards, rebuild and verify.
				man, err := OpenIndex(bob, x.ID, x.Bytes)
				if err != nil {
					b.Fatal(err)
				}
				shards := func(_ context.Context, g int) ([][]byte, error) {
					first, gl := man.Layout.FirstShard(g), man.Layout.Group(g)
					got := make([][]byte, gl.Shards())
					for i := range gl.Data {
						got[i] = blocks[man.ShardIDs[first+i]]
					}
					return GroupPayloads(man, g, got), nil
				}
				if _, err := c.OpenBody(context.Background(), bob, man, shards, io.Discard, time.Time{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// rawNonce is the baselines' AEAD nonce.
var rawNonce [12]byte

// rawLayout is the baselines' layout of a 1 MiB body: 16 data and 8
// parity shards of 64 KiB. It is the layout the first format gave 1 MiB
// and stays the baseline Build and Open are measured against (the
// layout of spec 9.3 for 1 MiB, 33+16 shards of 32 KiB, costs more).
func rawLayout(b *testing.B) (aeadBuf []byte, shards [][]byte, enc reedsolomon.Encoder) {
	const s, k, m = 65536, 16, 8
	enc, err := reedsolomon.New(k, m)
	if err != nil {
		b.Fatal(err)
	}
	aeadBuf = randomBytes(k*s, 2)
	shards = make([][]byte, k+m)
	for i := range shards {
		shards[i] = make([]byte, s)
	}
	return aeadBuf, shards, enc
}

// BenchmarkRawAEADRS1MiB is the baseline for Build: ChaCha20-Poly1305 of
// 1 MiB and a Reed-Solomon 16+8 encode of it into reused buffers.
func BenchmarkRawAEADRS1MiB(b *testing.B) {
	body, shards, enc := rawLayout(b)
	aead, _ := chacha20poly1305.New(make([]byte, keySize))
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		aead.Seal(body[:0], rawNonce[:], body[:len(body)-tagSize], []byte(block.LabelMail))
		for i := range 16 {
			copy(shards[i], body[i*65536:])
		}
		if err := enc.Encode(shards); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawOpenAEADRS1MiB is the baseline for Open: join 16 data
// shards into one buffer and open the AEAD.
func BenchmarkRawOpenAEADRS1MiB(b *testing.B) {
	body, shards, enc := rawLayout(b)
	aead, _ := chacha20poly1305.New(make([]byte, keySize))
	sealed := aead.Seal(nil, rawNonce[:], body[:len(body)-tagSize], []byte(block.LabelMail))
	for i := range 16 {
		copy(shards[i], sealed[i*65536:])
	}
	if err := enc.Encode(shards); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		for i := range 16 {
			copy(body[i*65536:], shards[i])
		}
		if _, err := aead.Open(body[:0], rawNonce[:], body, []byte(block.LabelMail)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawSHA512_1MiB is one SHA-512/256 stream over 1 MiB: a
// mail's data is hashed about 2.5 times (the message hash, and every
// block ID over data and parity), in SIMD lanes (block.SumMany).
func BenchmarkRawSHA512_1MiB(b *testing.B) {
	buf := randomBytes(benchSize, 3)
	b.SetBytes(benchSize)
	for b.Loop() {
		sha512.Sum512_256(buf)
	}
}

// BenchmarkRawHashes1MiB is the hashing spec 9 requires of a 1 MiB mail,
// alone: the message hash's chunk IDs and the IDs of the 33+16 data
// blocks of 32 KiB, in SIMD lanes (block.SumMany) on one core. Build and
// Open cannot be cheaper than this plus the AEAD and the code.
func BenchmarkRawHashes1MiB(b *testing.B) {
	msg := randomBytes(benchSize, 4)
	var chunks [][]byte
	for off := 0; off < benchSize; off += HashChunk {
		chunks = append(chunks, msg[off:off+HashChunk])
	}
	blocks := make([][]byte, 49)
	for i := range blocks {
		blocks[i] = randomBytes(block.HeaderSizeWithDeletion+32768, uint64(10+i))
	}
	ids := make([]block.ID, len(blocks))
	b.SetBytes(benchSize)
	for b.Loop() {
		block.SumMany(chunks, ids[:len(chunks)])
		block.SumMany(blocks, ids)
	}
}

// BenchmarkSenderWork is what a sender pays per recipient to seal and
// grind an index block at the default difficulty: with the full work
// (2^22 trials) and under a grant (2^16, the routing prefix). Read the
// two as a ratio of the same run (README, "Allow-lists").
func BenchmarkSenderWork(b *testing.B) {
	var seed [identity.SeedSize]byte
	seed[0] = 0x77
	r, err := identity.FromSeed(seed, block.DefaultDifficulty, testCreated)
	if err != nil {
		b.Fatal(err)
	}
	claim := &GrantClaim{ID: vectorGrantID, Key: vectorGrantKey}
	for _, bc := range []struct {
		name  string
		claim *GrantClaim
	}{{"full", nil}, {"granted", claim}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := sealIndex(context.Background(), testManifest(), r.Public(), newSealer(r.Public()), bc.claim, nil, 0, 0, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
