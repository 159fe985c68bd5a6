package record

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/flowmail/flowmail/block"
)

// addVectorSeeds seeds a corpus with every record vector's input, so the
// fuzzer starts from valid records of each kind and each broken rule.
func addVectorSeeds(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 4, 0, 1})
	for _, v := range genRecordVectors().Vectors {
		if b, err := hex.DecodeString(v.Input); err == nil && len(b) > 0 {
			f.Add(b)
		}
	}
}

// FuzzDecode: the layout decoder never panics, and what it accepts
// re-encodes to the same bytes (one encoding per record).
func FuzzDecode(f *testing.F) {
	addVectorSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			return
		}
		if enc := r.Encode(); !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding %x gives %x", b, enc)
		}
		if len(b) > block.MaxRecordSize {
			t.Fatalf("accepted %d bytes", len(b))
		}
	})
}

// FuzzParse: full verification never panics, accepts only what Decode
// accepts, and what it accepts has a slot and compares equal to itself.
func FuzzParse(f *testing.F) {
	addVectorSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse(b)
		if err != nil {
			return
		}
		if _, err := Decode(b); err != nil {
			t.Fatalf("Parse accepted what Decode refuses: %v", err)
		}
		if err := Supersedes(r, r); err != nil {
			t.Fatalf("a record does not supersede itself: %v", err)
		}
		if r.Kind == KindKeyLog {
			if _, err := r.KeyLog.State(); err != nil {
				t.Fatalf("parsed key log has no state: %v", err)
			}
		}
	})
}

// FuzzSupersedes: the decision on two parsed records never panics and is
// never "keep" both ways unless they are the same bytes.
func FuzzSupersedes(f *testing.F) {
	w := newVectorWorld(f)
	for _, p := range [][2]*Record{{w.v1, w.v2}, {w.v2, w.fork}, {w.revoked, w.v1}, {w.d1, w.d2}, {w.d2, w.d2b}, {w.name, w.nameRev}} {
		f.Add(p[0].Bytes(), p[1].Bytes())
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		ra, err := Parse(a)
		if err != nil {
			return
		}
		rb, err := Parse(b)
		if err != nil {
			return
		}
		if Supersedes(ra, rb) == nil && Supersedes(rb, ra) == nil && !bytes.Equal(a, b) {
			t.Fatal("two different records each supersede the other")
		}
	})
}

// FuzzNormalise: normalising is idempotent and its output is short ASCII.
func FuzzNormalise(f *testing.F) {
	for _, v := range genRecordVectors().Vectors {
		if v.Function == "Normalise" {
			f.Add(v.Input)
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Normalise(s)
		if err != nil {
			return
		}
		again, err := Normalise(n)
		if err != nil || again != n {
			t.Fatalf("%q normalises to %q, which normalises to %q (%v)", s, n, again, err)
		}
		if len(n) > MaxNameSize {
			t.Fatalf("%q: %d bytes", n, len(n))
		}
		for i := 0; i < len(n); i++ {
			if n[i] >= 0x80 || 'A' <= n[i] && n[i] <= 'Z' {
				t.Fatalf("%q is not lower-case ASCII", n)
			}
		}
	})
}
