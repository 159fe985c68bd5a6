package record

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

// NewKeyLog returns the key log of an identity with no events: its
// inception pubkey block alone.
func NewKeyLog(inception []byte) (*Record, error) {
	return Parse((&KeyLog{Inception: inception}).Encode())
}

// Rotation is what Rotate makes: everything the owner publishes and keeps.
type Rotation struct {
	Log      *Record            // the key log with the rotate event, for its slot
	Identity *identity.Identity // the new generation: Public().Block is the new pubkey block, also published
	Next     *identity.NextKey  // the new next key, for next.key
}

// Rotate makes the next generation of cur (identity.Rotate: next's key
// takes over, D is difficulty, a fresh next key comes from random) and
// the rotate event that tells everyone, signed by the revealed key, appended
// to log, cur's verified key log (NewKeyLog before the first rotation).
// The event is dated now, or the last event's time if that is later.
func Rotate(log *Record, cur *identity.Identity, next *identity.NextKey, difficulty int, now time.Time, random io.Reader) (*Rotation, error) {
	s, err := stateFor(log, cur)
	if err != nil {
		return nil, err
	}
	t := eventTime(&s, now)
	nid, after, err := cur.Rotate(next, difficulty, time.Unix(int64(t), 0), random)
	if err != nil {
		return nil, err
	}
	e := Event{Type: EventRotate, Time: t, Signer: keyOf(next), Next: nid.Public().Next, Pubkey: nid.Public().ID}
	e.Signature = next.Sign(block.LabelRecord, e.message(s.Events+1, s.Head))
	r, err := appendEvent(log, e)
	if err != nil {
		return nil, err
	}
	return &Rotation{Log: r, Identity: nid, Next: after}, nil
}

// Revoke appends the terminal revoke event to log, signed by by: the
// identity's current generation, or its next key (for an owner who lost
// the current key).
func Revoke(log *Record, by Signer, now time.Time) (*Record, error) {
	s, err := state(log)
	if err != nil {
		return nil, err
	}
	k := keyOf(by)
	if k != s.SignKey && block.NextCommitment(k[:]) != s.Next {
		return nil, fmt.Errorf("%w: only the current key or the committed next key revokes %s", ErrWrongKey, identity.FormatAddress(s.Address))
	}
	e := Event{Type: EventRevoke, Time: eventTime(&s, now), Signer: k}
	e.Signature = by.Sign(block.LabelRecord, e.message(s.Events+1, s.Head))
	return appendEvent(log, e)
}

// Move appends the terminal move event to log: the identity moved to
// to's address. It is signed by the identity's committed next key (so a
// thief holding only the current key cannot move the identity away) and
// by to's current key (so nobody is moved onto an address without its
// owner's consent).
func Move(log *Record, next *identity.NextKey, to *identity.Identity, now time.Time) (*Record, error) {
	s, err := state(log)
	if err != nil {
		return nil, err
	}
	if next.Commitment() != s.Next {
		return nil, fmt.Errorf("%w: only the committed next key moves %s", ErrWrongKey, identity.FormatAddress(s.Address))
	}
	e := Event{Type: EventMove, Time: eventTime(&s, now), Signer: keyOf(next), To: to.ID(), ToKey: keyOf(to)}
	msg := e.message(s.Events+1, s.Head)
	e.Signature = next.Sign(block.LabelRecord, msg)
	e.ToSignature = to.Sign(block.LabelRecord, msg)
	return appendEvent(log, e)
}

// state verifies log is a key log that can take one more event.
func state(log *Record) (KeyState, error) {
	if log == nil || log.Kind != KindKeyLog {
		return KeyState{}, fmt.Errorf("%w: not a key log", ErrMismatch)
	}
	s, err := log.KeyLog.State()
	if err != nil {
		return KeyState{}, err
	}
	if err := s.Sendable(); err != nil {
		return KeyState{}, err
	}
	return s, nil
}

// stateFor is state, for a log that must describe cur's generation.
func stateFor(log *Record, cur *identity.Identity) (KeyState, error) {
	s, err := state(log)
	if err != nil {
		return KeyState{}, err
	}
	if s.Address != cur.ID() || s.Generation != cur.Generation() || !bytes.Equal(s.SignKey[:], cur.VerifyKey()) {
		return KeyState{}, fmt.Errorf("%w: the log is at generation %d of %s, the identity at generation %d of %s",
			ErrMismatch, s.Generation, identity.FormatAddress(s.Address), cur.Generation(), cur.Address())
	}
	return s, nil
}

// eventTime is now in Unix seconds, or the last event's (or the inception
// block's) time when a wrong clock puts now before it.
func eventTime(s *KeyState, now time.Time) uint64 {
	t := max(now.Unix(), s.Inception.Created.Unix(), s.Changed.Unix(), 0)
	return uint64(t)
}

func appendEvent(log *Record, e Event) (*Record, error) {
	l := &KeyLog{Inception: log.KeyLog.Inception, Events: append(append([]Event(nil), log.KeyLog.Events...), e)}
	b := l.Encode()
	if len(b) > block.MaxRecordSize {
		return nil, fmt.Errorf("%w: the key log would be %d bytes; the identity must move to a new address", ErrTooLarge, len(b))
	}
	return Parse(b)
}

// SignDelegation signs d with by, the owner's current key, and returns
// the record. d.Signer and d.Signature are set from by.
func SignDelegation(d Delegation, by Signer) (*Record, error) {
	d.Signer = keyOf(by)
	d.Delegates = slices.SortedFunc(slices.Values(d.Delegates), func(a, b block.ID) int { return bytes.Compare(a[:], b[:]) })
	unsigned := d.appendUnsigned(nil)
	d.Signature = by.Sign(block.LabelRecord, unsigned)
	return Parse(d.Encode())
}

// SignName signs n with the domain's key and, unless n is a revocation,
// co-signs it with user, a signing key of the bound address (nil for a
// revocation). DomainKey and UserKey are set from the signers.
func SignName(n NameCert, domain, user Signer) (*Record, error) {
	n.DomainKey = keyOf(domain)
	n.UserKey, n.UserSignature = [ed25519.PublicKeySize]byte{}, [ed25519.SignatureSize]byte{}
	if user != nil {
		n.UserKey = keyOf(user)
	}
	msg := n.SignedBytes()
	n.DomainSignature = domain.Sign(block.LabelRecord, msg)
	if user != nil && !n.Version.Revoked {
		n.UserSignature = user.Sign(block.LabelRecord, msg)
	}
	return Parse(n.Encode())
}
