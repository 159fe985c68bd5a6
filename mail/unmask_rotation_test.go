package mail

import (
	crand "crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

// TestRetiredKeyUnmasksAtLowDifficulty: after a rotation the recipient
// holds two keys, and with D <= RouteBits nothing of the work is hidden,
// so the current key's (wrong) context passes the full-work check too;
// the index block sealed to the retired key must still open, and keep
// its full work.
func TestRetiredKeyUnmasksAtLowDifficulty(t *testing.T) {
	for _, d := range []int{4, RouteBits} {
		id, next, err := identity.New(d, time.Now(), crand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		blk, err := sealIndex(t.Context(), &Manifest{}, id.Public(), newSealer(id.Public()), nil, nil, 1, time.Second, nil)
		if err != nil {
			t.Fatal(err)
		}
		rotated, _, err := id.Rotate(next, d, time.Now(), crand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		x, err := UnmaskIndex(rotated, block.Sum(blk), blk)
		if err != nil {
			t.Fatalf("D=%d: unmask: %v", d, err)
		}
		// The manifest here is empty, so decoding it fails; what matters is
		// that a key opened it.
		if _, err := x.Open(); errors.Is(err, identity.ErrNotForMe) {
			t.Fatalf("D=%d: the rotated identity cannot open mail sealed to its retired key: %v", d, err)
		}
		if !x.FullWork {
			t.Errorf("D=%d: full work lost after opening with the retired key", d)
		}
	}
}
