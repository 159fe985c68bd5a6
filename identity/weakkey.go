package identity

import (
	"crypto/ecdh"
	"math/big"
)

// fieldP is 2^255 - 19, the prime of Curve25519's field.
var fieldP = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))

// probeScalar is any X25519 private key: clamping makes it a multiple of
// the cofactor, so its product with a point is zero exactly when the
// point's order divides 8.
var probeScalar = func() *ecdh.PrivateKey {
	k, err := ecdh.X25519().NewPrivateKey([]byte("flowmail/v1 small-order probe!!!"))
	if err != nil {
		panic(err)
	}
	return k
}()

// SmallOrder reports whether an Ed25519 public key is a point of small
// order, or not canonically encoded. Go's ed25519.Verify accepts such keys,
// and under them signatures can be made up without any private key (for
// the identity point, every signature with R = identity and S = 0
// verifies), so a key anyone may choose must be checked before its
// signature means anything. The test maps the Edwards y to the Montgomery
// u = (1+y)/(1-y), which has small order exactly when the Edwards point
// does, and lets X25519 refuse the low-order result.
func SmallOrder(key []byte) bool {
	if len(key) != 32 {
		return true
	}
	le := make([]byte, 32)
	for i := range 32 {
		le[31-i] = key[i]
	}
	le[0] &= 0x7f // the sign of x; it does not change the order
	y := new(big.Int).SetBytes(le)
	if y.Cmp(fieldP) >= 0 || y.Cmp(big.NewInt(1)) == 0 {
		return true // not canonical, or the identity point
	}
	num := new(big.Int).Add(y, big.NewInt(1))
	den := new(big.Int).Sub(big.NewInt(1), y)
	den.Mod(den, fieldP)
	u := num.Mul(num, den.ModInverse(den, fieldP))
	u.Mod(u, fieldP)
	be := u.FillBytes(make([]byte, 32))
	for i := range 16 {
		be[i], be[31-i] = be[31-i], be[i]
	}
	pub, err := ecdh.X25519().NewPublicKey(be)
	if err != nil {
		return true
	}
	_, err = probeScalar.ECDH(pub)
	return err != nil
}
