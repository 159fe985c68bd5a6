package block

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"testing"
)

func TestSumIsDoubleSHA512_256(t *testing.T) {
	b := []byte("flowmail")
	inner := sha512.Sum512_256(b)
	want := sha512.Sum512_256(inner[:])
	if got := Sum(b); got != ID(want) {
		t.Fatalf("Sum = %x, want %x", got, want)
	}
	// Published SHA-512/256("abc") (FIPS 180-4 example), to pin the primitive.
	abc := sha512.Sum512_256([]byte("abc"))
	if hex.EncodeToString(abc[:]) != "53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23" {
		t.Fatalf("SHA-512/256 of abc = %x", abc)
	}
}

func TestCommonPrefixLen(t *testing.T) {
	var a, b ID
	if got := CommonPrefixLen(a, b); got != 256 {
		t.Fatalf("equal IDs: %d, want 256", got)
	}
	for bit := 0; bit < 256; bit++ {
		c := a
		c[bit/8] ^= 0x80 >> (bit % 8)
		if got := CommonPrefixLen(a, c); got != bit {
			t.Fatalf("IDs differing first at bit %d: got %d", bit, got)
		}
		if d := Xor(a, c); CommonPrefixLen(d, ID{}) != bit {
			t.Fatalf("Xor distance of bit %d wrong", bit)
		}
	}
}

func TestLessOrdersBigEndian(t *testing.T) {
	a, b := ID{0x01}, ID{0x00, 0xff}
	if !Less(b, a) || Less(a, b) || Less(a, a) {
		t.Fatal("Less does not order big-endian")
	}
}

func TestParseHexIDRoundTrip(t *testing.T) {
	id := Sum([]byte("x"))
	got, err := ParseHexID(id.String())
	if err != nil || got != id {
		t.Fatalf("round trip: %v %v", got, err)
	}
	for _, bad := range []string{"", "00", id.String()[:63] + "g", id.String() + "00"} {
		if _, err := ParseHexID(bad); err == nil {
			t.Errorf("ParseHexID(%q) accepted", bad)
		}
	}
}

func TestLabeledHashSeparatesLabels(t *testing.T) {
	// "ab"+"c" and "a"+"bc" must differ: the length byte frames the label.
	if LabeledHash("ab", []byte("c")) == LabeledHash("a", []byte("bc")) {
		t.Fatal("label framing does not separate ab|c from a|bc")
	}
	if !bytes.Equal(SignedMessage("ab", []byte("c")), []byte("\x02abc")) {
		t.Fatalf("SignedMessage = %q", SignedMessage("ab", []byte("c")))
	}
}

func TestCheckRejectsWhatParsersReject(t *testing.T) {
	for _, b := range [][]byte{nil, {1, 2, 0}, {1, 9, 0, 1}, {1, 3, 0, 0}, {1, 1, 0}} {
		if _, err := Check(b); err == nil {
			t.Errorf("Check(%x) accepted", b)
		}
	}
	if _, err := Check(Data{Payload: []byte{1}}.Encode()); err != nil {
		t.Errorf("Check(valid data) = %v", err)
	}
}

func TestIndexNonceIsLastEightBytes(t *testing.T) {
	x := Index{Header: Header{HasDeletion: true}, Sealed: make([]byte, MinIndexSize-HeaderSizeWithDeletion-NonceSize), Nonce: 0xfeedfacecafebeef}
	b := x.Encode()
	if len(b) != MinIndexSize {
		t.Fatalf("len = %d, want %d", len(b), MinIndexSize)
	}
	if !bytes.Equal(b[len(b)-8:], []byte{0xfe, 0xed, 0xfa, 0xce, 0xca, 0xfe, 0xbe, 0xef}) {
		t.Fatalf("nonce bytes %x", b[len(b)-8:])
	}
	if MinIndexSize%128 != 27 {
		t.Fatalf("MinIndexSize mod 128 = %d; the manifest padding rule (spec 9.5) assumes 27", MinIndexSize%128)
	}
}

func TestErrorsNameTheRule(t *testing.T) {
	_, _, err := ParseHeader([]byte{1, 7, 0})
	if !errors.Is(err, ErrType) || err.Error() != "block: unknown type: 7" {
		t.Fatalf("err = %v", err)
	}
}
