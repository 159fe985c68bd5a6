package identity

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/flowmail/flowmail/block"
)

// GracePeriod is how long after a rotation the retired encryption key
// still opens mail: a sender who resolved the old key just before the
// rotation stores an index block that lives at most MaxLifetime, and a day
// covers clocks and the time the new key log takes to spread. Recipients
// refuse envelopes older than MaxLifetime + 1 day anyway (section 9.6), so
// a longer grace would only keep a key that can no longer open anything
// acceptable, against the point of rotating.
const GracePeriod = block.MaxLifetime + 24*time.Hour

// Rotation errors.
var (
	ErrNextKeyMismatch  = errors.New("identity: this next key is not the one the identity committed to")
	ErrTooManyRotations = fmt.Errorf("identity: an address rotates at most %d times; move to a new address", block.MaxRotations)
)

// Rotate makes the next generation: next's key becomes the signing key
// (the rotation reveals it), its seed gives the new encryption key, the
// new pubkey block (difficulty D, stamped now) commits to a fresh next key
// drawn from random, and the address stays. The current generation's
// decryption key is kept for GracePeriod. It returns the new generation
// and its next key; the caller publishes the rotation (package record
// builds the key event) and replaces both key files.
func (id *Identity) Rotate(next *NextKey, difficulty int, now time.Time, random io.Reader) (*Identity, *NextKey, error) {
	if id.generation >= block.MaxRotations {
		return nil, nil, ErrTooManyRotations
	}
	if next.address != id.address || next.generation != id.generation+1 {
		return nil, nil, fmt.Errorf("%w: it is the %v, this identity is %s at generation %d",
			ErrNextKeyMismatch, next, id.Address(), id.generation)
	}
	c := next.Commitment()
	if subtle.ConstantTimeCompare(c[:], id.public.Next[:]) != 1 {
		return nil, nil, fmt.Errorf("%w: its key does not hash to the commitment in the current pubkey block", ErrNextKeyMismatch)
	}
	var fresh [SeedSize]byte
	if _, err := io.ReadFull(random, fresh[:]); err != nil {
		return nil, nil, fmt.Errorf("identity: reading randomness: %w", err)
	}
	after := newNextKey(fresh, id.address, id.generation+2)
	nid, err := buildGeneration(next.seed, difficulty, now, after.Commitment())
	if err != nil {
		return nil, nil, err
	}
	nid.address, nid.generation = id.address, id.generation+1
	nid.public.Owner = id.address
	nid.retired = append(append([]retiredKey(nil), id.retired...), retiredKey{seed: id.seed, enc: id.enc, until: nid.created.Add(GracePeriod)})
	return nid, after, nil
}

// ForgetRetired drops the retired decryption keys whose grace period has
// ended at now, and returns how many remain. Write the key file after, so
// the forgotten keys leave the disk too (forward secrecy is the point of
// rotating).
func (id *Identity) ForgetRetired(now time.Time) int {
	kept := id.retired[:0]
	for _, r := range id.retired {
		if now.Before(r.until) {
			kept = append(kept, r)
		}
	}
	clear(id.retired[len(kept):])
	id.retired = kept
	return len(kept)
}

// RetiredUntil returns when each retired key's grace period ends, oldest
// first.
func (id *Identity) RetiredUntil() []time.Time {
	out := make([]time.Time, len(id.retired))
	for i, r := range id.retired {
		out[i] = r.until
	}
	return out
}
