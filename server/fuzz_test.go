package server

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/flowmail/flowmail/account"
	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/kademlia"
	"github.com/flowmail/flowmail/record"
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

// noNet is a DHT that holds nothing, for the held service's fuzz target.
type noNet struct{}

func (noNet) Get(context.Context, block.ID) ([]byte, error) { return nil, ErrNotHeld }
func (noNet) List(context.Context, block.ID, int, time.Time) ([]block.ID, error) {
	return nil, ErrNotHeld
}
func (noNet) Pubkey(context.Context, block.ID) (*identity.PublicKey, error) { return nil, ErrNotHeld }
func (noNet) KeyState(context.Context, block.ID) (record.KeyState, error) {
	return record.KeyState{}, ErrNotHeld
}
func (noNet) GetRecord(context.Context, block.ID) (*record.Record, time.Duration, error) {
	return nil, 0, record.ErrNotFound
}

// FuzzHeldHandle: no request panics the held-mail service, and every
// answer is one the client parses.
func FuzzHeldHandle(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(Encode(m))
	}
	h, err := NewHolder(HolderConfig{Dir: f.TempDir(), Net: noNet{}})
	if err != nil {
		f.Fatal(err)
	}
	s := newHeldService(h, nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		ans := s.Handle(t.Context(), peer(1, 1), b)
		if len(ans) == 0 {
			t.Fatal("empty answer")
		}
		if kademlia.MsgType(ans[0]) != kademlia.TypeError && kademlia.MsgType(ans[0]) != kademlia.TypeOK {
			if _, err := Decode(ans); err != nil {
				t.Fatalf("answer does not decode: %v", err)
			}
		}
	})
}
