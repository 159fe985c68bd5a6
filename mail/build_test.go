package mail

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

func TestBuildRefusesWhatRecipientsWouldReject(t *testing.T) {
	c := testCodec(t)
	alice, bob := testIdentity(t, seedAlice, 4), testIdentity(t, seedBob, 4)
	good := composeTo(t, alice, []*identity.Identity{bob}, "s", "t")
	many := make([]*identity.PublicKey, MaxRecipients+1)
	for i := range many {
		many[i] = testIdentity(t, byte(100+i), 0).Public()
	}
	longHeader := append([]byte("From: <"+HeaderAddress(alice.ID())+">\r\nX-Long: "), bytes.Repeat([]byte("x"), MaxHeaderSize)...)
	longHeader = append(longHeader, "\r\n\r\nbody"...)
	in := func(sender *identity.Identity, rcpts []*identity.PublicKey, msg []byte) BuildInput {
		return BuildInput{Sender: sender, Recipients: rcpts, Message: bytes.NewReader(msg), Size: int64(len(msg))}
	}
	for _, tc := range []struct {
		name string
		in   BuildInput
		want error
	}{
		{"From is not the sender", in(bob, publicKeys(alice), good), ErrFromMismatch},
		{"no From header", in(alice, publicKeys(bob), []byte("Subject: x\r\n\r\nbody")), ErrFromHeader},
		{"header section too long", in(alice, publicKeys(bob), longHeader), ErrHeaderSize},
		{"no recipients", in(alice, nil, good), ErrRecipientCount},
		{"too many recipients", in(alice, many, good), ErrRecipientCount},
		{"duplicate recipient", in(alice, publicKeys(bob, bob), good), ErrDuplicateRecipient},
		{"message too large", BuildInput{Sender: alice, Recipients: publicKeys(bob), Message: bytes.NewReader(good), Size: MaxMessageSize + 1}, ErrMessageSize},
		{"message shorter than stated", BuildInput{Sender: alice, Recipients: publicKeys(bob), Message: bytes.NewReader(good), Size: int64(len(good)) + 1}, ErrMessageSize},
		{"message longer than stated", BuildInput{Sender: alice, Recipients: publicKeys(bob), Message: bytes.NewReader(good), Size: int64(len(good)) - 1}, ErrMessageSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Now = testNow
			if _, err := c.Build(context.Background(), tc.in, BuildOptions{}); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestBuildStopsGrindingWhenCancelled(t *testing.T) {
	c := testCodec(t)
	alice, bob := testIdentity(t, seedAlice, 4), testIdentity(t, seedBob, block.MaxDifficulty)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msg := composeTo(t, alice, []*identity.Identity{bob}, "s", "t")
	_, err := c.Build(ctx, BuildInput{Sender: alice, Recipients: publicKeys(bob), Message: bytes.NewReader(msg), Size: int64(len(msg)), Now: testNow},
		BuildOptions{ProgressInterval: time.Millisecond, Progress: func(p Progress) {
			if p.Phase == PhaseGrind {
				cancel()
			}
		}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestLayoutAtClassEdges(t *testing.T) {
	const full = GroupDataShards*MaxShardSize - tagSize
	for _, tc := range []struct {
		zlen    int64
		groups  int
		s, k, m int
	}{
		{1, 1, 1024, 2, 7},
		{2*1024 - 16, 1, 1024, 2, 7},
		{2*1024 - 15, 1, 1024, 3, 7},
		{48*1024 - 16, 1, 1024, 48, 15},
		{48*1024 - 15, 1, 2048, 25, 12},
		{64*1024 - 15, 1, 2048, 33, 13},
		{1 << 20, 1, 32768, 33, 13},
		{48 * 131072, 1, MaxShardSize, 25, 12},
		{48*MaxShardSize - 16, 1, MaxShardSize, 48, 15},
		{48*MaxShardSize - 15, 1, MaxShardSize, 49, 15},
		{full, 1, MaxShardSize, 64, 18},
		{full + 1, 2, 1024, 2, 7},
		{2 * full, 2, MaxShardSize, 64, 18},
		{MaxCompressedLen, MaxGroups, 0, 0, 0},
	} {
		l, err := LayoutFor(tc.zlen)
		if err != nil || l.Groups != tc.groups {
			t.Fatalf("LayoutFor(%d) = %+v, %v; want %d groups", tc.zlen, l, err, tc.groups)
		}
		if tc.s != 0 && l.Last != (GroupLayout{tc.s, tc.k, tc.m}) {
			t.Errorf("LayoutFor(%d): last group %+v, want %d+%d of %d", tc.zlen, l.Last, tc.k, tc.m, tc.s)
		}
		var capacity int64
		for g := range l.Groups {
			gl := l.Group(g)
			if gl.Shards() > 256 || gl.Data < 2 || gl.Data > GroupDataShards {
				t.Fatalf("LayoutFor(%d): group %d has %+v", tc.zlen, g, gl)
			}
			if g < l.Groups-1 && gl != fullGroup {
				t.Fatalf("LayoutFor(%d): group %d of %d is not full", tc.zlen, g, l.Groups)
			}
			capacity += int64(gl.plain())
		}
		if capacity < tc.zlen || capacity-tc.zlen >= int64(l.Last.ShardSize)+tagSize && l.Last.Data > 2 {
			t.Errorf("LayoutFor(%d): %d bytes of room", tc.zlen, capacity)
		}
		if l.Shards() > MaxShards {
			t.Errorf("LayoutFor(%d): %d shards, over MaxShards", tc.zlen, l.Shards())
		}
	}
	for _, zlen := range []int64{0, MaxCompressedLen + 1} {
		if _, err := LayoutFor(zlen); !errors.Is(err, ErrCompressedLen) {
			t.Errorf("LayoutFor(%d): %v, want ErrCompressedLen", zlen, err)
		}
	}
}

// TestMessageHashIsTheSpecsChunkedHash computes spec 9.2's message hash
// one chunk at a time with crypto/sha512 and compares, for lengths around
// the chunk and batch edges, written in odd pieces.
func TestMessageHashIsTheSpecsChunkedHash(t *testing.T) {
	spec := func(m []byte) [32]byte {
		outer := sha512.New512_256()
		outer.Write([]byte{byte(len(labelMessage))})
		outer.Write([]byte(labelMessage))
		for len(m) > 0 {
			c := min(len(m), HashChunk)
			inner := sha512.Sum512_256(m[:c])
			id := sha512.Sum512_256(inner[:])
			outer.Write(id[:])
			m = m[c:]
		}
		var out [32]byte
		outer.Sum(out[:0])
		return out
	}
	for _, n := range []int{1, HashChunk - 1, HashChunk, HashChunk + 1, 8 * HashChunk, 8*HashChunk + 1, 17*HashChunk + 5} {
		m := randomBytes(n, uint64(n))
		if got := MessageHash(m); got != spec(m) {
			t.Fatalf("%d bytes in one write: hash differs from the spec's", n)
		}
		h := newMessageHasher(nil)
		for rest := m; len(rest) > 0; {
			c := min(len(rest), 1+len(rest)%99991)
			h.Write(rest[:c])
			rest = rest[c:]
		}
		if h.Sum() != spec(m) {
			t.Fatalf("%d bytes in pieces: hash differs from the spec's", n)
		}
	}
}

// TestBuildOpenRoundTrip builds mails of several sizes, one of them over
// two groups, and opens each with as many shards of every group lost as
// its parity allows.
func TestBuildOpenRoundTrip(t *testing.T) {
	c := testCodec(t)
	alice, bob := testIdentity(t, seedAlice, 0), testIdentity(t, seedBob, 0)
	sizes := []int{0, 3000, 70000, 1 << 20}
	if !testing.Short() {
		sizes = append(sizes, fullGroupPlain+(200<<10)) // two groups
	}
	for _, size := range sizes {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			msg := composeTo(t, alice, []*identity.Identity{bob}, "size", "x")
			msg = append(msg, randomBytes(size, uint64(size))...)
			var groups []int
			b, err := c.Build(context.Background(), BuildInput{Sender: alice, Recipients: publicKeys(bob), Message: bytes.NewReader(msg), Size: int64(len(msg)), Now: testNow, Rand: detRand(1)},
				BuildOptions{Progress: func(p Progress) {
					if p.Phase == PhaseEncode && p.Done > 0 && p.Done < p.Total {
						groups = append(groups, int(p.Done))
					}
				}})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Release()
			l := b.Layout
			if len(b.Data) != l.Shards() || len(b.ShardIDs) != l.Shards() {
				t.Fatalf("%d data blocks, %d IDs for %d shards", len(b.Data), len(b.ShardIDs), l.Shards())
			}
			if len(groups) != l.Groups-1 {
				t.Fatalf("progress after %d groups of %d", len(groups), l.Groups)
			}
			man, err := OpenIndex(bob, b.Index[0].ID, b.Index[0].Bytes)
			if err != nil {
				t.Fatal(err)
			}
			lost := map[int]bool{}
			for g := range l.Groups {
				gl, first := l.Group(g), l.FirstShard(g)
				for j := range gl.Parity {
					lost[first+j*gl.Shards()/gl.Parity] = true // spread over data and parity
				}
			}
			o, got, err := openMem(c, bob, man, blockShards(man, blocksOf(b.Data), lost), testNow)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, msg) || o.Sender.ID != alice.ID() || o.Envelope.MessageID != b.MessageID {
				t.Fatal("opened mail differs")
			}
			t.Logf("message %d bytes: %d groups, last %d+%d of %d", len(msg), l.Groups, l.Last.Data, l.Last.Parity, l.Last.ShardSize)
			// One more lost in the last group: too few.
			g := l.Groups - 1
			for j := range l.Group(g).Shards() {
				if !lost[l.FirstShard(g)+j] {
					lost[l.FirstShard(g)+j] = true
					break
				}
			}
			if _, _, err := openMem(c, bob, man, blockShards(man, blocksOf(b.Data), lost), testNow); !errors.Is(err, ErrShardsMissing) {
				t.Fatalf("one shard too many lost: %v, want ErrShardsMissing", err)
			}
		})
	}
}

// TestBuildCompressesABase64Attachment: a random attachment is base64 in
// the message, 6 bits in every 8, and the body keeps about 3/4 of it
// (spec 9.3 step 1: literals are entropy-coded even where zstd finds no
// match). Without that the body was as long as the message, and a 1 MiB
// mail took 49 shards where it now takes 40.
func TestBuildCompressesABase64Attachment(t *testing.T) {
	c := testCodec(t)
	alice, bob := testIdentity(t, seedAlice, 0), testIdentity(t, seedBob, 0)
	msg := composeTo(t, alice, []*identity.Identity{bob}, "photo", "see attached", Attachment{Name: "a.bin", Data: randomBytes(768<<10, 7)})
	b, err := c.Build(context.Background(), BuildInput{Sender: alice, Recipients: publicKeys(bob), Message: bytes.NewReader(msg), Size: int64(len(msg)), Now: testNow, Rand: detRand(1)}, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	ratio := float64(b.Layout.CompressedLen) / float64(len(msg))
	if ratio > 0.8 {
		t.Errorf("a %d-byte message with a base64 attachment compressed to %d bytes (%.3f), want at most 0.8", len(msg), b.Layout.CompressedLen, ratio)
	}
	if got := b.Layout.Shards(); got > 26+12 {
		t.Errorf("%d shards (last group %+v), want at most 26+12", got, b.Layout.Last)
	}
	t.Logf("%d bytes -> %d (%.3f), %d+%d shards of %d", len(msg), b.Layout.CompressedLen, ratio, b.Layout.Last.Data, b.Layout.Last.Parity, b.Layout.Last.ShardSize)
}

// TestLiteralsForTellsRandomBytesFromText: only a body that looks random
// skips entropy coding of literals (spec 9.3 step 1).
func TestLiteralsForTellsRandomBytesFromText(t *testing.T) {
	b64 := make([]byte, base64.StdEncoding.EncodedLen(3<<10))
	base64.StdEncoding.Encode(b64, randomBytes(3<<10, 3))
	for _, tc := range []struct {
		what   string
		sample []byte
		want   encoderKind
	}{
		{"random bytes", randomBytes(8<<10, 1), rawLiterals},
		{"base64", b64, codeLiterals},
		{"English", bytes.Repeat([]byte("The quick brown fox jumps over the lazy dog.\r\n"), 100), codeLiterals},
		{"Japanese in UTF-8", bytes.Repeat([]byte("いろはにほへとちりぬるを わかよたれそつねならむ うゐのおくやまけふこえて あさきゆめみしゑひもせす\r\n"), 40), codeLiterals},
		{"nothing", nil, codeLiterals},
	} {
		if got := literalsFor(tc.sample); got != tc.want {
			t.Errorf("%s: kind %d, want %d", tc.what, got, tc.want)
		}
	}
}

// TestBuildHandsOnOneGroupAtATime: with BuildOptions.Data, the data
// blocks go out group by group in order, and the Built keeps none.
func TestBuildHandsOnOneGroupAtATime(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a mail of two groups")
	}
	c := testCodec(t)
	alice, bob := testIdentity(t, seedAlice, 0), testIdentity(t, seedBob, 0)
	msg := append(composeTo(t, alice, []*identity.Identity{bob}, "big", "x"), randomBytes(fullGroupPlain+1000, 5)...)
	stored := map[block.ID][]byte{}
	var order []int
	b, err := c.Build(context.Background(), BuildInput{Sender: alice, Recipients: publicKeys(bob), Message: bytes.NewReader(msg), Size: int64(len(msg)), Now: testNow},
		BuildOptions{Data: func(_ context.Context, g int, blocks []Block) error {
			order = append(order, g)
			for _, x := range blocks {
				stored[x.ID] = bytes.Clone(x.Bytes)
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	if len(b.Data) != 0 || fmt.Sprint(order) != "[0 1]" || len(stored) != b.Layout.Shards() {
		t.Fatalf("Built holds %d blocks; groups handed on %v; %d blocks of %d", len(b.Data), order, len(stored), b.Layout.Shards())
	}
	man, err := OpenIndex(bob, b.Index[0].ID, b.Index[0].Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, got, err := openMem(c, bob, man, blockShards(man, stored, nil), testNow); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("open: %v", err)
	}
	// A failing sink stops the build.
	boom := errors.New("network down")
	_, err = c.Build(context.Background(), BuildInput{Sender: alice, Recipients: publicKeys(bob), Message: bytes.NewReader(msg), Size: int64(len(msg)), Now: testNow},
		BuildOptions{Data: func(context.Context, int, []Block) error { return boom }})
	if !errors.Is(err, boom) {
		t.Fatalf("failing sink: %v", err)
	}
}

// TestOpenStopsAtTheHeadForOthersMail: a mail signed for someone else is
// refused after its first group, before the rest is fetched.
func TestOpenStopsAtTheHeadForOthersMail(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a mail of two groups")
	}
	c := testCodec(t)
	alice, bob, carol := testIdentity(t, seedAlice, 0), testIdentity(t, seedBob, 0), testIdentity(t, seedCarol, 0)
	msg := append(composeTo(t, alice, []*identity.Identity{carol}, "for carol", "x"), randomBytes(fullGroupPlain+1000, 6)...)
	e := &Envelope{Time: testNow, Recipients: []block.ID{carol.ID()}, From: alice.ID()}
	e.Sender = alice.Public().Block
	env := e.Encode(msg)
	e.Signature = alice.Sign(block.LabelEnvelope, e.SignedBytes())
	env = e.Encode(msg)
	man, blocks := forgeTo(t, c, env, bob)
	var asked []int
	shards := blockShards(man, blocks, nil)
	_, err := c.OpenBody(context.Background(), bob, man, func(ctx context.Context, g int) ([][]byte, error) {
		asked = append(asked, g)
		return shards(ctx, g)
	}, io.Discard, testNow)
	if !errors.Is(err, ErrNotRecipient) || fmt.Sprint(asked) != "[0]" {
		t.Fatalf("err %v after groups %v; want ErrNotRecipient after group 0 alone", err, asked)
	}
}

// forgeTo codes envelope bytes, whatever they say, as a mail sealed to
// r (difficulty ignored): what a dishonest sender can do. It returns the
// manifest r would open and the data blocks.
func forgeTo(t testing.TB, c *Codec, envelope []byte, r *identity.Identity) (*Manifest, map[block.ID][]byte) {
	t.Helper()
	var z bytes.Buffer
	zw, err := c.encoder(&z)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(envelope)
	zw.Close()
	c.putEncoder(zw)
	return forgeZ(t, c, z.Bytes(), r)
}

// forgeZ codes compressed bytes z as the body of a mail to r.
func forgeZ(t testing.TB, c *Codec, z []byte, r *identity.Identity) (*Manifest, map[block.ID][]byte) {
	t.Helper()
	l, err := LayoutFor(int64(len(z)))
	if err != nil {
		t.Fatal(err)
	}
	man := &Manifest{ContentKey: [keySize]byte{7}, Layout: l}
	blocks := map[block.ID][]byte{}
	for g := range l.Groups {
		gl := l.Group(g)
		zb := l.zBytes(g)
		body := make([]byte, gl.Data*gl.ShardSize)
		copy(body, z[:zb])
		z = z[zb:]
		arena := make([]byte, gl.Shards()*(block.HeaderSize+gl.ShardSize))
		bs, _, err := c.sealGroup(gl, g, g == l.Groups-1, &man.ContentKey, body, zb, block.Header{}, arena, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bs {
			id := block.Sum(b)
			man.ShardIDs = append(man.ShardIDs, id)
			blocks[id] = b
		}
	}
	// Through the encoder and decoder, as a recipient gets it.
	x, err := DecodeManifest(man.Encode())
	if err != nil {
		t.Fatal(err)
	}
	_ = r
	return x, blocks
}

// TestOpenRefusesBadBodies: compressed bodies an honest sender never
// makes are refused with the error that names what is wrong.
func TestOpenRefusesBadBodies(t *testing.T) {
	c := testCodec(t)
	alice, bob := testIdentity(t, seedAlice, 0), testIdentity(t, seedBob, 0)
	msg := composeTo(t, alice, []*identity.Identity{bob}, "s", "t")
	e := &Envelope{Time: testNow, Recipients: []block.ID{bob.ID()}, From: alice.ID(), Sender: alice.Public().Block}
	e.Encode(msg)
	e.Signature = alice.Sign(block.LabelEnvelope, e.SignedBytes())
	good := e.Encode(msg)
	compress := func(b []byte) []byte {
		var z bytes.Buffer
		zw, _ := c.encoder(&z)
		zw.Write(b)
		zw.Close()
		c.putEncoder(zw)
		return z.Bytes()
	}
	for _, tc := range []struct {
		name string
		z    []byte
		want error
	}{
		{"honest", compress(good), nil},
		{"bytes after the signature", compress(append(bytes.Clone(good), 0)), ErrTrailing},
		{"a second frame", append(compress(good), compress([]byte("more"))...), ErrTrailing},
		{"cut inside the message", compress(good[:len(good)-100]), ErrTruncated},
		{"not zstd", bytes.Repeat([]byte{0xfe}, 100), ErrDecompress},
		{"frame cut short", compress(good)[:40], ErrTruncated},
		{"flipped signature", compress(append(bytes.Clone(good[:len(good)-1]), good[len(good)-1]^1)), ErrSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			man, blocks := forgeZ(t, c, tc.z, bob)
			_, _, err := openMem(c, bob, man, blockShards(man, blocks, nil), testNow)
			if tc.want == nil && err != nil || !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestOpenBoundsADecompressionBomb: a tiny body that decompresses to far
// more than its envelope claims stops at the claim, and a window larger
// than MaxWindow is refused before it is allocated.
func TestOpenBoundsADecompressionBomb(t *testing.T) {
	c := testCodec(t)
	alice, bob := testIdentity(t, seedAlice, 0), testIdentity(t, seedBob, 0)
	e := &Envelope{Time: testNow, Recipients: []block.ID{bob.ID()}, From: alice.ID(), Sender: alice.Public().Block, MessageLen: 100}
	bomb := append(e.AppendHead(nil), make([]byte, 64<<20)...) // 64 MiB where 100 bytes are claimed
	man, blocks := forgeTo(t, c, bomb, bob)
	if man.Layout.DataBytes() > 64<<10 {
		t.Fatalf("the bomb takes %d bytes of shards, not a bomb", man.Layout.DataBytes())
	}
	var out countingWriter
	_, err := c.OpenBody(context.Background(), bob, man, blockShards(man, blocks, nil), &out, testNow)
	if !errors.Is(err, ErrTrailing) || out.n > 100 {
		t.Fatalf("err = %v after %d bytes out; want ErrTrailing after at most 100", err, out.n)
	}

	// A frame declaring a window over MaxWindow: hand-made header (RFC
	// 8878 3.1.1.1.2: window descriptor exponent 13 + 10 = 2^23 plus 7/8 of it).
	frame := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x6f, 0x01, 0x00, 0x00}
	man, blocks = forgeZ(t, c, frame, bob)
	if _, _, err := openMem(c, bob, man, blockShards(man, blocks, nil), testNow); !errors.Is(err, ErrDecompress) || !strings.Contains(err.Error(), "window") {
		t.Fatalf("oversized window: %v", err)
	}
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// TestMaxMessageSize builds and opens a mail of MaxMessageSize, streaming
// both ways (FLOWMAIL_LONG=1: it takes a while).
func TestMaxMessageSize(t *testing.T) {
	if os.Getenv("FLOWMAIL_LONG") != "1" {
		t.Skip("FLOWMAIL_LONG=1 builds and opens a mail of 1 GiB")
	}
	c := testCodec(t)
	alice, bob := testIdentity(t, seedAlice, 0), testIdentity(t, seedBob, 0)
	head := composeTo(t, alice, []*identity.Identity{bob}, "max", "x")
	size := int64(MaxMessageSize)
	msg := io.MultiReader(bytes.NewReader(head), io.LimitReader(zeroReader{}, size-int64(len(head))))
	stored := map[block.ID][]byte{}
	b, err := c.Build(context.Background(), BuildInput{Sender: alice, Recipients: publicKeys(bob), Message: msg, Size: size, Now: testNow},
		BuildOptions{Data: func(_ context.Context, g int, blocks []Block) error {
			for _, x := range blocks {
				stored[x.ID] = bytes.Clone(x.Bytes)
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	man, err := OpenIndex(bob, b.Index[0].ID, b.Index[0].Bytes)
	if err != nil {
		t.Fatal(err)
	}
	var out countingWriter
	if _, err := c.OpenBody(context.Background(), bob, man, blockShards(man, stored, nil), &out, testNow); err != nil || out.n != size {
		t.Fatalf("opened %d bytes: %v", out.n, err)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestLargestIndexBlockFits: a manifest of MaxShards shard IDs, sealed
// in an index block, stays within block.MaxBlockSize, and the index
// block's length stays 27 mod 128 (spec 9.5).
func TestLargestIndexBlockFits(t *testing.T) {
	l, err := LayoutFor(MaxCompressedLen)
	if err != nil {
		t.Fatal(err)
	}
	if l.Shards() > MaxShards || l.Groups != MaxGroups {
		t.Fatalf("the largest mail takes %d shards in %d groups", l.Shards(), l.Groups)
	}
	m := &Manifest{HasDataDeletion: true, Layout: l, ShardIDs: make([]block.ID, MaxShards)}
	bob := testIdentity(t, seedBob, 0)
	sealed, err := bob.Public().Seal(block.LabelIndex, m.Encode())
	if err != nil {
		t.Fatal(err)
	}
	blk := block.Index{Header: block.Header{HasDeletion: true}, Sealed: sealed}.Encode()
	if len(blk) > block.MaxBlockSize || len(blk)%128 != 27 {
		t.Fatalf("index block of %d bytes (%d mod 128)", len(blk), len(blk)%128)
	}
}
