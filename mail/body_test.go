package mail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

func TestShardLayoutAtClassEdges(t *testing.T) {
	for _, tc := range []struct{ zlen, s, k, m int }{
		{0, 4096, 1, 1},
		{4096 - 16, 4096, 1, 1},
		{4096 - 15, 4096, 2, 1},
		{16*4096 - 16, 4096, 16, 8},
		{16*4096 - 15, 65536, 2, 1},
		{16*65536 - 16, 65536, 16, 8},
		{16*65536 - 15, 261120, 5, 3},
		{16*261120 - 16, 261120, 16, 8},
		{16 * 261120, 261120, 17, 9},
		{MaxDataShards*261120 - 16, 261120, 170, 85},
	} {
		s, k, m, err := shardLayout(tc.zlen)
		if err != nil || s != tc.s || k != tc.k || m != tc.m {
			t.Errorf("shardLayout(%d) = %d, %d, %d, %v; want %d, %d, %d", tc.zlen, s, k, m, err, tc.s, tc.k, tc.m)
		}
		if k+m > 256 || k*s-tagSize < tc.zlen {
			t.Errorf("shardLayout(%d): %d+%d shards of %d do not hold it", tc.zlen, k, m, s)
		}
	}
	if _, _, _, err := shardLayout(MaxDataShards*261120 - 15); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("one byte past 170 shards: %v, want ErrTooLarge", err)
	}
}

func TestBodyRoundTripAtClassEdges(t *testing.T) {
	c := testCodec(t)
	key := [keySize]byte{1, 2, 3}
	for _, zlen := range []int{1, 4080, 4081, 65520, 65521, 1048560, 1048561} {
		t.Run(fmt.Sprint(zlen), func(t *testing.T) {
			z := randomBytes(zlen, uint64(zlen))
			body, err := c.encode(z, &key, block.Header{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.putBuf(body.arena)
			man := &Manifest{ContentKey: key, CompressedLen: zlen, ShardSize: body.shardSize, DataShards: body.k, ParityShards: body.m}
			for _, b := range body.blocks {
				if len(b) != block.HeaderSize+body.shardSize {
					t.Fatalf("data block of %d bytes, want %d", len(b), block.HeaderSize+body.shardSize)
				}
				man.ShardIDs = append(man.ShardIDs, block.Sum(b))
			}
			if _, err := DecodeManifest(man.Encode()); err != nil {
				t.Fatalf("the manifest of a built body does not decode: %v", err)
			}
			// Lose every data shard the parity can stand in for.
			payloads := make([][]byte, len(body.blocks))
			for i, b := range body.blocks {
				if i >= body.m {
					payloads[i] = b[block.HeaderSize:]
				}
			}
			got, buf, err := c.decode(man, payloads)
			if err != nil {
				t.Fatal(err)
			}
			defer c.putBuf(buf)
			if !bytes.Equal(got, z) {
				t.Fatal("decoded body differs")
			}
		})
	}
}

// messageWithZLen returns a message from alice to bob whose compressed
// envelope, built with detRand(7), is zlen bytes: its body
// is random, so each added byte adds one compressed byte.
func messageWithZLen(t *testing.T, c *Codec, alice, bob *identity.Identity, zlen int) []byte {
	t.Helper()
	head := fmt.Appendf(nil, "From: %s\r\nTo: %s\r\nSubject: edge\r\n\r\n", HeaderAddress(alice.ID()), HeaderAddress(bob.ID()))
	n := max(zlen-2000, 0)
	for range 8 {
		msg := append(bytes.Clone(head), randomBytes(n, 77)...)
		env := &Envelope{Time: testNow, Message: msg, Recipients: []block.ID{bob.ID()}}
		if _, err := readKeys(detRand(7), 1, env.MessageID[:]); err != nil { // as Build does
			t.Fatal(err)
		}
		eb, err := signEnvelope(env, alice)
		if err != nil {
			t.Fatal(err)
		}
		z := c.compress(eb)
		got := len(z)
		c.putBuf(z)
		if got == zlen {
			return msg
		}
		n += zlen - got
		if n < 0 {
			t.Fatalf("no body is small enough for %d compressed bytes", zlen)
		}
	}
	t.Fatalf("found no body that compresses to %d bytes", zlen)
	return nil
}

func TestBuildOpenAtShardClassEdges(t *testing.T) {
	alice, bob := testIdentity(t, seedAlice, 4), testIdentity(t, seedBob, 4)
	c := testCodec(t)
	empty := composeTo(t, alice, []*identity.Identity{bob}, "", "")
	cases := []struct {
		name string
		msg  []byte
	}{{"empty body", empty}}
	for _, z := range []int{4080, 4081, 65520, 65521, 1048560, 1048561} {
		cases = append(cases, struct {
			name string
			msg  []byte
		}{fmt.Sprintf("compressed %d", z), messageWithZLen(t, c, alice, bob, z)})
	}
	if os.Getenv("FLOWMAIL_LONG") == "1" {
		big := composeTo(t, alice, []*identity.Identity{bob}, "big", "x")
		big = append(big, randomBytes(MaxMessageSize-len(big), 9)...)
		cases = append(cases, struct {
			name string
			msg  []byte
		}{"MaxMessageSize", big})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := c.Build(context.Background(), BuildInput{Sender: alice, Recipients: publicKeys(bob), Message: tc.msg, Now: testNow, Rand: detRand(7)}, BuildOptions{Workers: 2})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Release()
			mail, man, err := openBuilt(c, bob, b, 0, testNow)
			if err != nil {
				t.Fatal(err)
			}
			s, k, m, _ := shardLayout(man.CompressedLen)
			if man.ShardSize != s || man.DataShards != k || man.ParityShards != m || len(b.Data) != k+m {
				t.Fatalf("manifest %d+%d shards of %d for %d bytes", man.DataShards, man.ParityShards, man.ShardSize, man.CompressedLen)
			}
			t.Logf("message %d bytes, compressed %d: %d+%d shards of %d", len(tc.msg), man.CompressedLen, k, m, s)
			if !bytes.Equal(mail.Message(), tc.msg) {
				t.Fatal("opened message differs")
			}
		})
	}
}

func TestDecompressStopsAtTheBound(t *testing.T) {
	c := testCodec(t)
	zeros := make([]byte, MaxDecompressed+1)
	// A frame that states its size, and a streamed one that does not: the
	// decoder must stop at the bound either way.
	withSize := c.zenc.EncodeAll(zeros, nil)
	var streamed bytes.Buffer
	w, err := zstd.NewWriter(&streamed, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(zeros); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if h := new(zstd.Header); h.Decode(streamed.Bytes()) != nil || h.HasFCS {
		t.Fatal("the streamed frame states its size; the test needs one that does not")
	}
	for name, z := range map[string][]byte{"with size": withSize, "streamed": streamed.Bytes()} {
		if _, err := c.decompress(z); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: %v, want ErrTooLarge", name, err)
		}
	}
	if out, err := c.decompress(c.zenc.EncodeAll(zeros[:MaxDecompressed], nil)); err != nil || len(out) != MaxDecompressed {
		t.Fatalf("exactly the bound: %d bytes, %v", len(out), err)
	}
}

func TestBufferClassesBoundWaste(t *testing.T) {
	for _, n := range []int{0, 1, 4096, 4097, 1 << 20, 1<<20 + 1, 44390400, 64 << 20} {
		c := bufClass(n)
		if c < n || c-n > max(n, 4096) || c-n >= 1<<20 && n > 1<<20 || bufClass(c) != c {
			t.Errorf("bufClass(%d) = %d", n, c)
		}
	}
}

// TestDecompressTakesOneFrame: spec 9.3 allows one zstd frame. A second
// one would also slip past a bound checked only between frames.
func TestDecompressTakesOneFrame(t *testing.T) {
	c := testCodec(t)
	one := c.zenc.EncodeAll([]byte("one frame of envelope bytes"), nil)
	if out, err := c.decompress(one); err != nil || string(out) != "one frame of envelope bytes" {
		t.Fatalf("one frame: %q, %v", out, err)
	}
	for name, z := range map[string][]byte{
		"two frames":    append(bytes.Clone(one), one...),
		"trailing byte": append(bytes.Clone(one), 0),
		"cut short":     one[:len(one)-1],
	} {
		if _, err := c.decompress(z); !errors.Is(err, ErrDecompress) {
			t.Errorf("%s: %v, want ErrDecompress", name, err)
		}
	}
}

// FuzzZstdFrameLen: the frame walker never panics or runs past its
// input, and finds exactly the frames the encoder writes.
func FuzzZstdFrameLen(f *testing.F) {
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		f.Fatal(err)
	}
	defer enc.Close()
	for _, s := range []string{"", "a", strings.Repeat("flowmail ", 5000)} {
		f.Add(enc.EncodeAll([]byte(s), nil))
	}
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x00, 0x01, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, z []byte) {
		n, _, err := zstdFrameLen(z)
		if err == nil && (n < 4 || n > len(z)) {
			t.Fatalf("frame of %d bytes in %d", n, len(z))
		}
		// Whatever the input, its compressed form is one whole frame.
		frame := enc.EncodeAll(z, nil)
		if n, _, err := zstdFrameLen(frame); err != nil || n != len(frame) {
			t.Fatalf("encoder frame of %d bytes: walker says %d, %v", len(frame), n, err)
		}
	})
}
