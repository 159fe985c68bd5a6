package identity

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func FuzzParsePubkey(f *testing.F) {
	for _, v := range genIdentityVectors().Vectors {
		if v.Function == "ParsePubkey" {
			b, _ := hex.DecodeString(v.Input)
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePubkey(b)
		if err != nil {
			return
		}
		if !bytes.Equal(p.Block, b) {
			t.Fatal("parsed block differs from input")
		}
	})
}

func FuzzParseAddress(f *testing.F) {
	for _, v := range genIdentityVectors().Vectors {
		if v.Function == "ParseAddress" {
			f.Add(v.Input)
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseAddress(s)
		if err != nil {
			return
		}
		if got := FormatAddress(id); got != strings.ToLower(strings.TrimSpace(s)) {
			t.Fatalf("%q parsed, but formats back as %q", s, got)
		}
	})
}

func FuzzDecodeKeyFile(f *testing.F) {
	id := mustFromSeed(f, 1, 8)
	clear, _ := encodeKeyFile(id, KeyFileOptions{NoPassphrase: true})
	sealed, _ := encodeKeyFile(id, KeyFileOptions{Passphrase: []byte("p"), ScryptLogN: 10})
	f.Add(clear)
	f.Add(sealed)
	f.Add([]byte(keyFileMagic))
	addKeyFileVectors(f)
	errNoPass := errors.New("no passphrase in fuzzing")
	f.Fuzz(func(t *testing.T, b []byte) {
		// Never derive a key: scrypt would dominate and the format checks
		// before it are what outside bytes reach.
		got, err := DecodeKeyFile(b, func() ([]byte, error) { return nil, errNoPass })
		if err != nil || bytes.HasPrefix(b, []byte(keyFileMagicV1)) {
			return // the first layout is read, never written
		}
		again, err := encodeKeyFile(got, KeyFileOptions{NoPassphrase: true})
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("unprotected key file does not re-encode to the same bytes")
		}
	})
}

func FuzzDecodeNextKeyFile(f *testing.F) {
	addKeyFileVectors(f)
	errNoPass := errors.New("no passphrase in fuzzing")
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := DecodeNextKeyFile(b, func() ([]byte, error) { return nil, errNoPass })
		if err != nil {
			return
		}
		again, err := seal(encodeNextKey(k), KeyFileOptions{NoPassphrase: true})
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("unprotected next key file does not re-encode to the same bytes")
		}
	})
}

func addKeyFileVectors(f *testing.F) {
	for _, v := range keyFileVectors() {
		b, _ := hex.DecodeString(v.Input)
		f.Add(b)
	}
}
