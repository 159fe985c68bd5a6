package block

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// addVectorSeeds seeds a fuzz corpus with every vector input, so fuzzing
// starts from valid blocks and each broken rule.
func addVectorSeeds(f *testing.F) {
	f.Add([]byte{})
	for _, v := range genBlockVectors().Vectors {
		if b, err := hex.DecodeString(v.Input); err == nil && v.Params == nil {
			f.Add(b)
		}
	}
}

func FuzzParseHeader(f *testing.F) {
	addVectorSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, rest, err := ParseHeader(b)
		if err != nil {
			return
		}
		enc := append(h.Append(nil), rest...)
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding %x gives %x", b, enc)
		}
	})
}

func FuzzParseData(f *testing.F) {
	addVectorSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseData(b)
		if err != nil {
			return
		}
		if enc := d.Encode(); !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding %x gives %x", b, enc)
		}
	})
}

func FuzzParseIndex(f *testing.F) {
	addVectorSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := ParseIndex(b)
		if err != nil {
			return
		}
		if enc := x.Encode(); !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding %x gives %x", b, enc)
		}
	})
}

func FuzzParsePubkey(f *testing.F) {
	addVectorSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePubkey(b)
		if err != nil {
			return
		}
		if enc := p.Encode(); !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding %x gives %x", b, enc)
		}
	})
}
