package record

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/flowmail/flowmail/block"
)

// relation is how one version of a slot stands to another.
type relation int

const (
	same relation = iota
	newer
	older
	forked
)

// compare says how b stands to a, two verified records of one slot. Key
// logs: b extends a (newer), a extends b (older), or they diverge. Certificates:
// by sequence number; two versions with the same number, or consecutive ones
// whose link does not match, fork.
func compare(a, b *Record) relation {
	if bytes.Equal(a.raw, b.raw) {
		return same
	}
	if a.Kind == KindKeyLog {
		ea, eb := a.KeyLog.Events, b.KeyLog.Events
		n := min(len(ea), len(eb))
		for i := range n {
			if ea[i] != eb[i] {
				return forked
			}
		}
		switch {
		case len(eb) > len(ea):
			return newer
		case len(eb) < len(ea):
			return older
		}
		return forked // same events, other bytes: cannot happen with one inception
	}
	va, vb := a.version(), b.version()
	switch {
	case va.Seq == vb.Seq:
		return forked
	case vb.Seq == va.Seq+1 && vb.Prev != block.Sum(a.raw):
		return forked
	case va.Seq == vb.Seq+1 && va.Prev != block.Sum(b.raw):
		return forked
	case vb.Seq > va.Seq:
		return newer
	}
	return older
}

func (r *Record) version() *Version {
	if r.Kind == KindDelegation {
		return &r.Delegation.Version
	}
	return &r.Name.Version
}

// terminal reports whether nothing may replace the record: a key log that
// ends in a revocation or a move, a revoked certificate.
func (r *Record) terminal() bool {
	if r.Kind == KindKeyLog {
		ev := r.KeyLog.Events
		return len(ev) > 0 && ev[len(ev)-1].Type != EventRotate
	}
	return r.version().Revoked
}

// Supersedes decides whether a node holding held keeps next in its place;
// both come from Parse. nil: keep next (a newer version, or the same bytes
// again, which refreshes the expiry). Otherwise the refusal, each its own
// error: ErrSlot (another slot), ErrRevoked (held ended the slot: nothing
// replaces a revocation or a move, whatever its number), ErrStale (next is
// an older version), ErrForked (next is not a version of held's history).
func Supersedes(held, next *Record) error {
	if held.Kind != next.Kind || held.Slot() != next.Slot() {
		return fmt.Errorf("%w: %v %v is not stored where %v %v is", ErrSlot, next.Kind, next.Slot().Short(), held.Kind, held.Slot().Short())
	}
	rel := compare(held, next)
	if rel == same {
		return nil
	}
	if held.terminal() {
		return fmt.Errorf("%w: the %v held for slot %v ended it", ErrRevoked, held.Kind, held.Slot().Short())
	}
	switch rel {
	case newer:
		return nil
	case older:
		return fmt.Errorf("%w: %v", ErrStale, held.describe(next))
	}
	return fmt.Errorf("%w: %v", ErrForked, held.describe(next))
}

func (r *Record) describe(next *Record) string {
	if r.Kind == KindKeyLog {
		return fmt.Sprintf("key log of %d events against the %d held", len(next.KeyLog.Events), len(r.KeyLog.Events))
	}
	return fmt.Sprintf("%v version %d against version %d held", r.Kind, next.version().Seq, r.version().Seq)
}

// Newest picks, of the records several nodes answered for slot, the one a
// client acts on. Answers that do not verify or belong to another slot are
// dropped. A revoked certificate wins over every other version (its signer
// ended the slot; later versions were signed after). Otherwise the newest
// wins, unless two answers fork: ErrForked, and no record. ErrNotFound when
// no answer verifies.
func Newest(slot block.ID, answers [][]byte) (*Record, error) {
	valid := parseAll(slot, answers)
	if len(valid) == 0 {
		return nil, fmt.Errorf("%w: no valid record among %d answers for slot %v", ErrNotFound, len(answers), slot.Short())
	}
	if valid[0].Kind != KindKeyLog {
		var first *Record
		for _, r := range valid {
			if r.terminal() && (first == nil || r.version().Seq < first.version().Seq) {
				first = r
			}
		}
		if first != nil {
			return first, nil
		}
	}
	best := valid[0]
	for i, a := range valid {
		for _, b := range valid[i+1:] {
			if compare(a, b) == forked {
				return nil, fmt.Errorf("%w: two answers for slot %v are not versions of one history", ErrForked, slot.Short())
			}
		}
		if compare(best, a) == newer {
			best = a
		}
	}
	return best, nil
}

func parseAll(slot block.ID, answers [][]byte) []*Record {
	var valid []*Record
	for _, b := range answers {
		if r, err := Parse(b); err == nil && r.Slot() == slot {
			valid = append(valid, r)
		}
	}
	return valid
}

// ResolveKeyLog folds the key logs several nodes answered for address
// into the state a client acts on. Answers that do not verify or belong to
// another slot are dropped; ErrNotFound when none is left (the identity
// has published no log: its inception block alone says its state,
// InitialState). When answers agree, the state is the longest log's. When
// they fork, two histories were signed with the identity's keys: the state
// is the part every answer shares, with Forked set, and Revoked too if
// any branch revoked; such an identity is not Sendable.
func ResolveKeyLog(address block.ID, answers [][]byte) (KeyState, error) {
	valid := parseAll(KeyLogSlot(address), answers)
	if len(valid) == 0 {
		return KeyState{}, fmt.Errorf("%w: no valid key log of %v among %d answers", ErrNotFound, address.Short(), len(answers))
	}
	slices.SortFunc(valid, func(a, b *Record) int { return len(b.KeyLog.Events) - len(a.KeyLog.Events) })
	longest := valid[0]
	shared := len(longest.KeyLog.Events)
	isForked, revoked := false, false
	for _, r := range valid {
		ev := r.KeyLog.Events
		n := 0
		for n < len(ev) && ev[n] == longest.KeyLog.Events[n] {
			n++
		}
		if n < len(ev) { // a shorter log that is a prefix is only stale
			isForked = true
			shared = min(shared, n)
		}
		if last := len(ev) - 1; last >= 0 && ev[last].Type == EventRevoke {
			revoked = true
		}
	}
	if !isForked {
		return longest.KeyLog.State()
	}
	prefix := &KeyLog{Inception: longest.KeyLog.Inception, Events: longest.KeyLog.Events[:shared]}
	s, err := prefix.State()
	if err != nil {
		return KeyState{}, err // a prefix of a verified log verifies
	}
	s.Forked, s.Revoked = true, s.Revoked || revoked
	return s, nil
}
