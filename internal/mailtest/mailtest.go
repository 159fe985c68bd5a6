// Package mailtest holds what the tests of mail, delivery and mailbox
// share: a fixed clock, named identities from fixed seeds and
// deterministic randomness. For tests only.
//
// It may import block and identity (not mail: mail's own tests use it).
package mailtest

import (
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/flowmail/flowmail/identity"
)

// Now is the clock of every test: 2026-03-01T00:00:00Z.
var Now = time.Unix(1772323200, 0)

// Created is the creation time of every test identity: 2026-01-01.
var Created = time.Unix(1767225600, 0)

// Named test identities; difficulty stays low so grinding takes no time.
const (
	Alice = 1 + iota
	Bob
	Carol
	Dave
	Mallory
)

// Identity is the identity of a fixed seed derived from seed.
func Identity(t testing.TB, seed byte, difficulty int) *identity.Identity {
	t.Helper()
	var s [identity.SeedSize]byte
	for i := range s {
		s[i] = seed*37 + byte(i)
	}
	id, err := identity.FromSeed(s, difficulty, Created)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Rand is a deterministic randomness source for reproducible mails.
func Rand(seed uint64) io.Reader {
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	return rand.NewChaCha8(s)
}

// RandomBytes returns n bytes that do not compress.
func RandomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 0xaa})
	r.Read(b)
	return b
}

// PublicKeys returns the public keys of ids.
func PublicKeys(ids ...*identity.Identity) []*identity.PublicKey {
	p := make([]*identity.PublicKey, len(ids))
	for i, id := range ids {
		p[i] = id.Public()
	}
	return p
}
