package identity

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/hex"
	"math/big"
	"testing"
)

// smallOrderKeys are the encodings of Ed25519's eight small-order points
// (libsodium's list), a non-canonical encoding of the identity, and the
// identity with x's sign bit set.
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

// montgomerySmallOrder is an independent oracle: the Edwards point has
// small order exactly when its Montgomery u = (1+y)/(1-y) is a low-order
// X25519 point, which crypto/ecdh refuses.
func montgomerySmallOrder(key []byte) bool {
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	le := make([]byte, 32)
	for i := range 32 {
		le[31-i] = key[i]
	}
	le[0] &= 0x7f
	y := new(big.Int).SetBytes(le)
	if y.Cmp(p) >= 0 || y.Cmp(big.NewInt(1)) == 0 {
		return true
	}
	den := new(big.Int).Sub(big.NewInt(1), y)
	den.Mod(den, p).ModInverse(den, p)
	u := new(big.Int).Add(y, big.NewInt(1))
	u.Mul(u, den).Mod(u, p)
	be := u.FillBytes(make([]byte, 32))
	for i := range 16 {
		be[i], be[31-i] = be[31-i], be[i]
	}
	pub, err := ecdh.X25519().NewPublicKey(be)
	if err != nil {
		return true
	}
	priv, _ := ecdh.X25519().NewPrivateKey(make([]byte, 32))
	_, err = priv.ECDH(pub)
	return err != nil
}

func TestSmallOrderKeys(t *testing.T) {
	for _, h := range smallOrderKeys {
		k, _ := hex.DecodeString(h)
		if !SmallOrder(k) || !montgomerySmallOrder(k) {
			t.Errorf("%s: SmallOrder %v, oracle %v", h, SmallOrder(k), montgomerySmallOrder(k))
		}
	}
	r := testRand(t)
	for i := range 2000 {
		var seed [32]byte
		r.Read(seed[:])
		k := seed[:]
		if i%2 == 0 { // real keys, and random bytes (mostly not points at all)
			k = ed25519.NewKeyFromSeed(seed[:]).Public().(ed25519.PublicKey)
		}
		if SmallOrder(k) != montgomerySmallOrder(k) {
			t.Fatalf("%x: SmallOrder %v, oracle %v", k, SmallOrder(k), montgomerySmallOrder(k))
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
