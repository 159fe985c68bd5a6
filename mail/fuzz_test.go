package mail

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

func vectorSeeds(f *testing.F, function string) {
	for _, v := range genVectors().Vectors {
		if v.Function == function {
			b, _ := hex.DecodeString(v.Input)
			f.Add(b)
		}
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	vectorSeeds(f, "OpenEnvelope")
	me := vectorIdentity(0x20).ID()
	f.Fuzz(func(t *testing.T, b []byte) {
		e, msg, err := DecodeEnvelope(b)
		if err != nil {
			return
		}
		if enc := e.Encode(msg); !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding %x gives %x", b, enc)
		}
		_, _ = e.VerifyFor(me, msg) // must not panic
	})
}

func FuzzDecodeManifest(f *testing.F) {
	vectorSeeds(f, "DecodeManifest")
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeManifest(b)
		if err != nil {
			return
		}
		if enc := m.Encode(); !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding %x gives %x", b, enc)
		}
	})
}

func FuzzCheckFrom(f *testing.F) {
	for _, s := range []string{"From: a@b\r\n\r\n", "From: \"x\" <fm1@flowmail.invalid>\r\n\r\n", "From:\r\n From:\r\n\r\n", "\r\n", ""} {
		f.Add([]byte(s))
	}
	f.Add(genVectorMessage())
	signer := vectorIdentity(0x10).ID()
	f.Fuzz(func(t *testing.T, msg []byte) {
		_ = CheckFrom(msg, signer) // must not panic
	})
}

func genVectorMessage() []byte {
	return []byte("From: <" + HeaderAddress(vectorIdentity(0x10).ID()) + ">\r\nSubject: x\r\n\r\nbody")
}

// openFixture is what the Open fuzzers share: a recipient with D = 0 (so
// every ID passes the proof of work) and a codec.
type openFixture struct {
	me    *identity.Identity
	codec *Codec
}

func newOpenFixture(f *testing.F) *openFixture {
	c, err := NewCodec()
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { c.Close() })
	return &openFixture{me: testIdentity(f, seedBob, 0), codec: c}
}

// open opens blk with the given data blocks, served by ID; it must never
// panic and, when it succeeds, must have checked everything.
func (x *openFixture) open(t *testing.T, blk []byte, shards ...[]byte) {
	man, err := OpenIndex(x.me, block.Sum(blk), blk)
	if err != nil {
		return
	}
	blocks := map[block.ID][]byte{}
	for _, b := range shards {
		blocks[block.Sum(b)] = b
	}
	o, msg, err := openMem(x.codec, x.me, man, blockShards(man, blocks, nil), testNow)
	if err != nil {
		return
	}
	if _, err := o.Envelope.VerifyFor(x.me.ID(), msg); err != nil {
		t.Fatalf("Open accepted a mail whose envelope fails: %v", err)
	}
}

// sealedIndex seals plaintext to me in an index block.
func (x *openFixture) sealedIndex(t testing.TB, plaintext []byte) []byte {
	sealed, err := x.me.Public().Seal(block.LabelIndex, plaintext)
	if err != nil {
		t.Fatal(err)
	}
	return block.Index{Header: block.Header{HasDeletion: true}, Sealed: sealed}.Encode()
}

// validMail returns an honest index block and data blocks from alice to me.
func (x *openFixture) validMail(f *testing.F) (index []byte, data [][]byte) {
	alice := testIdentity(f, seedAlice, 0)
	msg := composeTo(f, alice, []*identity.Identity{x.me}, "fuzz", "seed")
	b := build(f, x.codec, alice, msg, 1, x.me)
	for _, d := range b.Data {
		data = append(data, bytes.Clone(d.Bytes))
	}
	return bytes.Clone(b.Index[0].Bytes), data
}

// FuzzOpenIndex feeds arbitrary index and data block bytes to Open.
func FuzzOpenIndex(f *testing.F) {
	x := newOpenFixture(f)
	idx, data := x.validMail(f)
	f.Add(idx, data[0])
	f.Add(idx[:block.MinIndexSize], []byte{})
	f.Add([]byte{1, 3, 1}, []byte{1, 2, 0, 1})
	f.Fuzz(func(t *testing.T, idx, shard []byte) {
		x.open(t, idx, shard)
	})
}

// FuzzOpenManifest seals arbitrary manifest bytes to the recipient, so the
// fuzzer reaches past HPKE into the manifest, shard and body checks.
func FuzzOpenManifest(f *testing.F) {
	x := newOpenFixture(f)
	idx, data := x.validMail(f)
	x2, _ := block.ParseIndex(idx)
	plain, err := x.me.Open(block.LabelIndex, x2.Sealed)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(plain, data[0])
	f.Add(plain[:130], data[0])
	f.Fuzz(func(t *testing.T, manifest, shard []byte) {
		x.open(t, x.sealedIndex(t, manifest), shard)
	})
}

// FuzzOpenBody encrypts and codes arbitrary compressed bytes as a mail to
// the recipient, so the fuzzer reaches the decompressor and the envelope
// checks.
func FuzzOpenBody(f *testing.F) {
	x := newOpenFixture(f)
	alice := testIdentity(f, seedAlice, 0)
	msg := composeTo(f, alice, []*identity.Identity{x.me}, "fuzz", "body")
	e := &Envelope{Time: testNow, Recipients: []block.ID{x.me.ID()}, From: alice.ID(), Sender: alice.Public().Block}
	e.Encode(msg)
	e.sign(alice)
	var z bytes.Buffer
	zw, err := x.codec.encoder(&z)
	if err != nil {
		f.Fatal(err)
	}
	zw.Write(e.Encode(msg))
	zw.Close()
	x.codec.putEncoder(zw)
	f.Add(z.Bytes())
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x6f, 0x01, 0x00, 0x00})
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, z []byte) {
		if len(z) == 0 || len(z) > 1<<20 {
			return
		}
		man, blocks := forgeZ(t, x.codec, z, x.me)
		o, msg, err := openMem(x.codec, x.me, man, blockShards(man, blocks, nil), testNow)
		if err != nil {
			return
		}
		if _, err := o.Envelope.VerifyFor(x.me.ID(), msg); err != nil {
			t.Fatalf("Open accepted a mail whose envelope fails: %v", err)
		}
	})
}

// FuzzParseLocator: no input panics ParseLocator, and what parses is
// exactly the locator block of the IDs it gives.
func FuzzParseLocator(f *testing.F) {
	f.Add(LocatorBlock([]block.ID{{1}, {2}}))
	f.Add([]byte{1, 2, 0})
	f.Add([]byte{1, 2, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		ids, err := ParseLocator(b)
		if err != nil {
			return
		}
		if !bytes.Equal(LocatorBlock(ids), b) {
			t.Fatalf("ParseLocator then LocatorBlock changed %x", b)
		}
	})
}
