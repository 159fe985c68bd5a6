package identity

import (
	"bytes"
	"encoding/hex"
)

// smallOrderY are the y coordinates (little-endian, x's sign bit cleared)
// of Ed25519's eight points of small order: 1 (the identity), p-1 (order
// 2), 0 (order 4) and the two of order 8. x and -x share a y, so five
// values cover all eight points.
var smallOrderY = func() [][]byte {
	var out [][]byte
	for _, h := range []string{
		"0100000000000000000000000000000000000000000000000000000000000000",
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"0000000000000000000000000000000000000000000000000000000000000000",
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
	} {
		b, err := hex.DecodeString(h)
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	return out
}()

// SmallOrder reports whether an Ed25519 public key is a point of small
// order, or not canonically encoded (y at least 2^255 - 19). Go's
// ed25519.Verify accepts such keys, and under them signatures can be made
// up without any private key (for the identity point, every signature with
// R = identity and S = 0 verifies), so a key anyone may choose must be
// checked before its signature means anything.
func SmallOrder(key []byte) bool {
	if len(key) != 32 {
		return true
	}
	var y [32]byte
	copy(y[:], key)
	y[31] &= 0x7f // x's sign: x and -x have the same order
	if !canonical(y) {
		return true
	}
	for _, s := range smallOrderY {
		if bytes.Equal(y[:], s) {
			return true
		}
	}
	return false
}

// canonical reports whether the little-endian y is below p = 2^255 - 19.
func canonical(y [32]byte) bool {
	if y[31] != 0x7f {
		return true
	}
	for i := 30; i >= 1; i-- {
		if y[i] != 0xff {
			return true
		}
	}
	return y[0] < 0xed
}
