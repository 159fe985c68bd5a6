package server

import (
	"bytes"
	"testing"

	"github.com/flowmail/flowmail/account"
)

// FuzzDecode: no input panics Decode, and what decodes re-encodes to the
// same bytes (the encoding is not malleable).
func FuzzDecode(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(Encode(m))
	}
	f.Add([]byte{})
	f.Add([]byte{byte(TypeSealed), 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		if !bytes.Equal(Encode(m), b) {
			t.Fatalf("Decode then Encode changed %x", b)
		}
	})
}

// FuzzHandle: no request panics the account service, and every answer
// is a message the client parses (an ERROR, OK or a server message).
func FuzzHandle(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(Encode(m))
	}
	keys, err := account.GenerateServerKeys()
	if err != nil {
		f.Fatal(err)
	}
	// One service for every input, as a server meets them: sessions and
	// counts pile up, within their bounds.
	a, err := NewAccounts(AccountsConfig{Dir: f.TempDir(), Keys: keys})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ans := a.Handle(t.Context(), peer(1, 1), b)
		if len(ans) == 0 {
			t.Fatal("empty answer")
		}
	})
}
