package identity

import (
	"crypto/ed25519"
	"encoding/hex"
	"testing"
)

// smallOrderKeys are the encodings of Ed25519's eight small-order points
// (libsodium's list), a non-canonical encoding of the identity, and the
// identity with x's sign bit set. Go's ed25519.Verify accepts made-up
// signatures under each (TestSmallOrderKeysForgeSignatures).
var smallOrderKeys = []string{
	"0100000000000000000000000000000000000000000000000000000000000000",
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	"0000000000000000000000000000000000000000000000000000000000000000",
	"0000000000000000000000000000000000000000000000000000000000000080",
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
	"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	"0100000000000000000000000000000000000000000000000000000000000080",
}

func TestSmallOrderKeys(t *testing.T) {
	for _, h := range smallOrderKeys {
		k, _ := hex.DecodeString(h)
		if !SmallOrder(k) {
			t.Errorf("%s not detected", h)
		}
	}
	r := testRand(t)
	for range 200 {
		var seed [32]byte
		r.Read(seed[:])
		pub := ed25519.NewKeyFromSeed(seed[:]).Public().(ed25519.PublicKey)
		if SmallOrder(pub) {
			t.Fatalf("real key %x flagged", pub)
		}
	}
	if !SmallOrder(make([]byte, 31)) {
		t.Fatal("a short key passed")
	}
}

// TestSmallOrderKeysForgeSignatures shows why the check exists: with the
// identity point as key, R = identity and S = 0 verify for any message.
func TestSmallOrderKeysForgeSignatures(t *testing.T) {
	k, _ := hex.DecodeString(smallOrderKeys[0])
	sig := make([]byte, 64)
	sig[0] = 1
	if !ed25519.Verify(k, []byte("anything"), sig) {
		t.Skip("this Go's ed25519 refuses small-order keys itself")
	}
}
