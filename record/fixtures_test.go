package record

import (
	"bytes"
	"crypto/ed25519"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/testseed"
	"github.com/flowmail/flowmail/internal/vectors"
)

var t0 = time.Unix(1767225600, 0) // 2026-01-01T00:00:00Z

// testRand is a deterministic source of key material for one test, from
// its seed (FLOWMAIL_SEED when set).
func testRand(t testing.TB) *rand.ChaCha8 { return testseed.ChaCha8(t) }

// patternRand gives the same key material every run, for vectors.
func patternRand(seed byte) *bytes.Reader {
	return bytes.NewReader(vectors.Pattern(4096, seed))
}

// owner is an identity with its key log as the owner keeps them.
type owner struct {
	id   *identity.Identity
	next *identity.NextKey
	log  *Record
	// gens are every generation, oldest first, for tests that play a thief
	// holding an old key.
	gens []*identity.Identity
}

func newOwner(t testing.TB, random interface{ Read([]byte) (int, error) }) *owner {
	t.Helper()
	id, next, err := identity.New(8, t0, random)
	if err != nil {
		t.Fatal(err)
	}
	log, err := NewKeyLog(id.Public().Block)
	if err != nil {
		t.Fatal(err)
	}
	return &owner{id: id, next: next, log: log, gens: []*identity.Identity{id}}
}

// rotate rotates the owner at t0 + hours.
func (o *owner) rotate(t testing.TB, hours int, random interface{ Read([]byte) (int, error) }) {
	t.Helper()
	r, err := Rotate(o.log, o.id, o.next, 8, t0.Add(time.Duration(hours)*time.Hour), random)
	if err != nil {
		t.Fatal(err)
	}
	o.id, o.next, o.log = r.Identity, r.Next, r.Log
	o.gens = append(o.gens, r.Identity)
}

func (o *owner) state(t testing.TB) KeyState {
	t.Helper()
	s, err := o.log.KeyLog.State()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustParse(t testing.TB, b []byte) *Record {
	t.Helper()
	r, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// signWith signs event e as event seq of a log whose chain hash is head,
// with key k: how a test forges what the builders refuse to make.
func signWith(k ed25519.PrivateKey, e *Event, seq int, head [32]byte) [64]byte {
	return [64]byte(ed25519.Sign(k, block.SignedMessage(block.LabelRecord, e.message(seq, head))))
}

// withEvent returns log's bytes with e appended, unchecked.
func withEvent(log *Record, e Event) []byte {
	l := &KeyLog{Inception: log.KeyLog.Inception, Events: append(append([]Event(nil), log.KeyLog.Events...), e)}
	return l.Encode()
}

func privateOf(id *identity.Identity) ed25519.PrivateKey { return id.SigningKey() }

// ed25519Key is a fixed Ed25519 key from a pattern, for a domain's key.
func ed25519Key(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(vectors.Pattern(32, seed))
}
