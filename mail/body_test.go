package mail

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

// TestGroupRoundTripAtClassEdges seals and opens one last group at the
// edges of the shard size classes, with as many data shards lost as the
// parity stands in for.
func TestGroupRoundTripAtClassEdges(t *testing.T) {
	c := testCodec(t)
	for _, zlen := range []int{1, 2032, 2033, 65520, 65521, 1048560, 1048561} {
		t.Run(fmt.Sprint(zlen), func(t *testing.T) {
			z := randomBytes(zlen, uint64(zlen))
			l, err := LayoutFor(int64(zlen))
			if err != nil {
				t.Fatal(err)
			}
			gl := l.Last
			man := &Manifest{ContentKey: [keySize]byte{1, 2, 3}, Layout: l}
			body := make([]byte, gl.Data*gl.ShardSize)
			copy(body, z)
			arena := make([]byte, gl.Shards()*(block.HeaderSize+gl.ShardSize))
			blocks, _, err := c.sealGroup(gl, 0, true, &man.ContentKey, body, zlen, block.Header{}, arena, 2)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range blocks {
				if len(b) != block.HeaderSize+gl.ShardSize {
					t.Fatalf("data block of %d bytes, want %d", len(b), block.HeaderSize+gl.ShardSize)
				}
				man.ShardIDs = append(man.ShardIDs, block.Sum(b))
			}
			if _, err := DecodeManifest(man.Encode()); err != nil {
				t.Fatalf("the manifest of a sealed group does not decode: %v", err)
			}
			// Lose as many data shards as there is parity (or all of them).
			payloads := make([][]byte, len(blocks))
			for i, b := range blocks {
				if i >= min(gl.Parity, gl.Data) {
					payloads[i] = b[block.HeaderSize:]
				}
			}
			got, buf, err := c.openGroup(man, 0, payloads)
			if err != nil {
				t.Fatal(err)
			}
			defer c.putBuf(buf)
			if !bytes.Equal(got, z) {
				t.Fatal("opened group differs")
			}
			// The nonce binds the group's place: opened as group 1, or as
			// not the last, it does not authenticate.
			two := *man
			two.Layout.Groups = 2
			if _, _, err := c.openGroup(&two, 1, payloads); err == nil {
				t.Fatal("a last group 0 opened as last group 1")
			}
		})
	}
}

// messageWithZLen returns a message from alice to bob whose compressed
// envelope, built with detRand(7), is zlen bytes: its body is random, so
// each added byte adds one compressed byte.
func messageWithZLen(t *testing.T, c *Codec, alice, bob *identity.Identity, zlen int64) []byte {
	t.Helper()
	head := fmt.Appendf(nil, "From: %s\r\nTo: %s\r\nSubject: edge\r\n\r\n", HeaderAddress(alice.ID()), HeaderAddress(bob.ID()))
	n := max(zlen-2000, 0)
	for range 8 {
		msg := append(bytes.Clone(head), randomBytes(int(n), 77)...)
		b, err := c.Build(context.Background(), BuildInput{Sender: alice, Recipients: publicKeys(bob), Message: bytes.NewReader(msg), Size: int64(len(msg)), Now: testNow, Rand: detRand(7)}, BuildOptions{Workers: 1})
		if err != nil {
			t.Fatal(err)
		}
		got := b.Layout.CompressedLen
		b.Release()
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
	alice, bob := testIdentity(t, seedAlice, 0), testIdentity(t, seedBob, 0)
	c := testCodec(t)
	empty := composeTo(t, alice, []*identity.Identity{bob}, "", "")
	cases := []struct {
		name string
		msg  []byte
	}{{"empty body", empty}}
	for _, z := range []int64{4080, 4081, 65520, 65521, 1048560, 1048561} {
		cases = append(cases, struct {
			name string
			msg  []byte
		}{fmt.Sprintf("compressed %d", z), messageWithZLen(t, c, alice, bob, z)})
	}
	if os.Getenv("FLOWMAIL_LONG") == "1" {
		cases = append(cases, struct {
			name string
			msg  []byte
		}{fmt.Sprintf("compressed %d", fullGroupPlain+1), messageWithZLen(t, c, alice, bob, fullGroupPlain+1)})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := build(t, c, alice, tc.msg, 7, bob)
			_, got, man, err := openBuilt(c, bob, b, 0, testNow)
			if err != nil {
				t.Fatal(err)
			}
			l, _ := LayoutFor(man.Layout.CompressedLen)
			if man.Layout != l || len(b.Data) != l.Shards() {
				t.Fatalf("manifest layout %+v for %d bytes, want %+v", man.Layout, man.Layout.CompressedLen, l)
			}
			t.Logf("message %d bytes, compressed %d: %d groups, last %d+%d shards of %d", len(tc.msg), l.CompressedLen, l.Groups, l.Last.Data, l.Last.Parity, l.Last.ShardSize)
			if !bytes.Equal(got, tc.msg) {
				t.Fatal("opened message differs")
			}
		})
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

// The body's zstd frame carries no content checksum, and a checksum a
// frame does carry is not checked (spec 9.3): the AEAD authenticated
// the frame before it is decompressed.
func TestFrameCarriesNoChecksum(t *testing.T) {
	c := testCodec(t)
	plain := bytes.Repeat([]byte("a body that compresses well. "), 200)
	var z bytes.Buffer
	e, err := c.encoder(&z)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	c.putEncoder(e)
	frame := z.Bytes()
	if len(frame) < 5 || !bytes.Equal(frame[:4], []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		t.Fatalf("not a zstd frame: % x", frame[:min(len(frame), 8)])
	}
	if frame[4]&0x04 != 0 {
		t.Fatalf("frame header descriptor %#x sets Content_Checksum_flag", frame[4])
	}
	decode := func(frame []byte) ([]byte, error) {
		d, err := c.decoder(bytes.NewReader(frame))
		if err != nil {
			return nil, err
		}
		defer c.putDecoder(d)
		return io.ReadAll(d)
	}
	if got, err := decode(frame); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("round trip: %v", err)
	}

	// A frame with a checksum, the checksum wrong: decoded all the same.
	other, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(true))
	if err != nil {
		t.Fatal(err)
	}
	withSum := other.EncodeAll(plain, nil)
	other.Close()
	if withSum[4]&0x04 == 0 {
		t.Fatal("the reference encoder wrote no checksum")
	}
	withSum[len(withSum)-1] ^= 0xff
	if got, err := decode(withSum); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("a frame with a wrong checksum: %v", err)
	}
}
