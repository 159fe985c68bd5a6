package record

import (
	"errors"
	"fmt"

	"github.com/flowmail/flowmail/identity"
)

// ErrKeyChanged is what Follows returns when an identity's keys changed
// outside the chain a client pinned: a key history that does not extend
// the one it saw before (docs/PROTOCOL.md 15.5, pinning).
var ErrKeyChanged = errors.New("record: key changed outside the pinned chain")

// Follows checks that the state extends pinned, the signing keys of an
// identity's generations that a client saw before (Keys of an earlier
// state, oldest first): the same keys in the same order, perhaps more.
// Every valid key log of an address starts at the same P0, so a state
// that does not extend the pin is a second history (a stolen next key
// used on another branch) or a rollback to an older one.
func (s *KeyState) Follows(pinned [][32]byte) error {
	if len(pinned) == 0 {
		return nil
	}
	if len(s.Keys) < len(pinned) {
		return fmt.Errorf("%w: %s is at generation %d, pinned at generation %d (an older history)",
			ErrKeyChanged, identity.FormatAddress(s.Address), s.Generation, len(pinned)-1)
	}
	for g, k := range pinned {
		if s.Keys[g] != k {
			return fmt.Errorf("%w: generation %d of %s has key %x…, pinned %x…",
				ErrKeyChanged, g, identity.FormatAddress(s.Address), s.Keys[g][:6], k[:6])
		}
	}
	return nil
}
