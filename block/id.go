package block

import (
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"math/bits"
)

// IDSize is the width of block IDs, node IDs and addresses.
const IDSize = 32

// ID names a block (and, through its pubkey block, a node or a user).
type ID [IDSize]byte

// Sum returns the ID of block bytes: SHA-512/256(SHA-512/256(b)).
func Sum(b []byte) ID {
	inner := sha512.Sum512_256(b)
	return sha512.Sum512_256(inner[:])
}

// String gives the full lowercase hex form, for logs and debugging. Users
// see addresses in their bech32m text form (identity.Address).
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short gives the first 8 bytes in hex, enough to tell IDs apart in logs.
func (id ID) Short() string { return hex.EncodeToString(id[:8]) }

// IsZero reports whether every byte of id is zero.
func (id ID) IsZero() bool { return id == ID{} }

// Xor returns the Kademlia distance between a and b.
func Xor(a, b ID) ID {
	var d ID
	for i := range d {
		d[i] = a[i] ^ b[i]
	}
	return d
}

// CommonPrefixLen returns how many leading bits a and b share (0 to 256).
func CommonPrefixLen(a, b ID) int {
	for i := range a {
		if x := a[i] ^ b[i]; x != 0 {
			return i*8 + bits.LeadingZeros8(x)
		}
	}
	return IDSize * 8
}

// Less reports whether a sorts before b as a big-endian 256-bit number.
func Less(a, b ID) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// ParseHexID parses the 64-character hex form that String gives.
func ParseHexID(s string) (ID, error) {
	var id ID
	if len(s) != 2*IDSize {
		return id, fmt.Errorf("block ID %q: want %d hex characters, got %d", s, 2*IDSize, len(s))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("block ID %q: %w", s, err)
	}
	return id, nil
}
