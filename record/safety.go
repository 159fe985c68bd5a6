package record

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/flowmail/flowmail/block"
)

// Safety code parameters (docs/PROTOCOL.md 15.6), after Signal's safety
// numbers: an iterated hash makes each guess of a colliding identity cost
// thousands of hashes on top of the code's 2^99.
const (
	SafetyIterations = 5200
	SafetyGroups     = 6 // of 5 digits: 30 digits, about 99.7 bits
)

// SafetyCode is the number two people compare out of band to check that
// each holds the other's real address: 30 digits in six groups, the same
// whichever side computes it (the addresses are sorted). It is computed
// from addresses, which rotations keep, so it changes only when an
// identity is replaced by another.
func SafetyCode(a, b block.ID) string {
	lo, hi := a, b
	if bytes.Compare(lo[:], hi[:]) > 0 {
		lo, hi = hi, lo
	}
	x := block.LabeledHash(labelSafety, lo[:], hi[:])
	for range SafetyIterations - 1 {
		x = block.LabeledHash(labelSafety, x[:], lo[:], hi[:])
	}
	groups := make([]string, SafetyGroups)
	for i := range groups {
		var five [8]byte
		copy(five[3:], x[5*i:5*i+5])
		groups[i] = fmt.Sprintf("%05d", binary.BigEndian.Uint64(five[:])%100000)
	}
	return strings.Join(groups, " ")
}
