package record

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

// EventType says what a key event does.
type EventType uint8

// Key event types (docs/PROTOCOL.md 15.1).
const (
	EventRotate EventType = 1 // the committed next key takes over
	EventRevoke EventType = 2 // terminal: the identity must no longer be used
	EventMove   EventType = 3 // terminal: the identity moved to another address
)

func (t EventType) String() string {
	switch t {
	case EventRotate:
		return "rotate"
	case EventRevoke:
		return "revoke"
	case EventMove:
		return "move"
	}
	return fmt.Sprintf("event(%d)", uint8(t))
}

// Sizes of the key log's parts.
const (
	rotateSize = 1 + 8 + 32 + 32 + 32 + 64
	revokeSize = 1 + 8 + 32 + 64
	moveSize   = 1 + 8 + 32 + 32 + 32 + 64 + 64
	// MaxKeyEvents is the most events a key log holds: MaxRotations
	// rotations and the terminal event, which always still fits.
	MaxKeyEvents = block.MaxRotations + 1
	keyLogFixed  = recordPrefix + block.PubkeySize + 1
)

// A log of MaxRotations rotations and a move, the largest event, must fit.
var _ [block.MaxRecordSize - keyLogFixed - block.MaxRotations*rotateSize - moveSize]struct{}

// Event is one key event. Which fields it carries depends on its type.
type Event struct {
	Type EventType
	Time uint64 // Unix seconds
	// Signer signs the event. Rotate and move: the key the previous state
	// committed to (revealing it). Revoke: the current key or that one.
	Signer [ed25519.PublicKeySize]byte
	// Rotate only: the commitment to the following key and the ID of the
	// new pubkey block (a type-1 block holding the new encryption key, D
	// and Next, signed by Signer).
	Next   [block.NextSize]byte
	Pubkey block.ID
	// Move only: the new address and a signing key of it; ToSignature is
	// that key's signature over the same message.
	To          block.ID
	ToKey       [ed25519.PublicKeySize]byte
	Signature   [ed25519.SignatureSize]byte
	ToSignature [ed25519.SignatureSize]byte
}

func (e *Event) size() int {
	switch e.Type {
	case EventRotate:
		return rotateSize
	case EventRevoke:
		return revokeSize
	case EventMove:
		return moveSize
	}
	return 0
}

// appendUnsigned appends the event's bytes before its signature(s).
func (e *Event) appendUnsigned(dst []byte) []byte {
	dst = append(dst, byte(e.Type))
	dst = binary.BigEndian.AppendUint64(dst, e.Time)
	dst = append(dst, e.Signer[:]...)
	switch e.Type {
	case EventRotate:
		dst = append(dst, e.Next[:]...)
		dst = append(dst, e.Pubkey[:]...)
	case EventMove:
		dst = append(dst, e.To[:]...)
		dst = append(dst, e.ToKey[:]...)
	}
	return dst
}

func (e *Event) append(dst []byte) []byte {
	dst = e.appendUnsigned(dst)
	dst = append(dst, e.Signature[:]...)
	if e.Type == EventMove {
		dst = append(dst, e.ToSignature[:]...)
	}
	return dst
}

// message is what the signature(s) of event number seq (from 1) cover:
// the record prefix, seq, the hash of the log before it, and the event up
// to its signatures. seq and prev are not sent: the log itself gives them.
func (e *Event) message(seq int, prev [32]byte) []byte {
	m := appendPrefix(make([]byte, 0, recordPrefix+4+32+moveSize), KindKeyLog)
	m = binary.BigEndian.AppendUint32(m, uint32(seq))
	m = append(m, prev[:]...)
	return e.appendUnsigned(m)
}

// KeyLog is an identity's key log: its inception pubkey block, whose ID is
// the address, and the events since, oldest first.
type KeyLog struct {
	Inception []byte
	Events    []Event
}

// Address is the ID of the inception block.
func (l *KeyLog) Address() block.ID { return block.Sum(l.Inception) }

// Encode returns the record's bytes.
func (l *KeyLog) Encode() []byte {
	b := appendPrefix(make([]byte, 0, keyLogFixed+len(l.Events)*moveSize), KindKeyLog)
	b = append(b, l.Inception...)
	b = append(b, byte(len(l.Events)))
	for i := range l.Events {
		b = l.Events[i].append(b)
	}
	return b
}

func decodeKeyLog(body []byte) (*KeyLog, error) {
	if len(body) < block.PubkeySize+1 {
		return nil, fmt.Errorf("%w: key log of %d bytes, at least %d", ErrMalformed, recordPrefix+len(body), keyLogFixed)
	}
	if _, err := block.ParsePubkey(body[:block.PubkeySize]); err != nil {
		return nil, fmt.Errorf("%w: inception block: %w", ErrMalformed, err)
	}
	l := &KeyLog{Inception: body[:block.PubkeySize]}
	count := int(body[block.PubkeySize])
	if count > MaxKeyEvents {
		return nil, fmt.Errorf("%w: %d key events, at most %d", ErrMalformed, count, MaxKeyEvents)
	}
	r := reader{body[block.PubkeySize+1:]}
	rotations := 0
	l.Events = make([]Event, 0, count)
	for i := range count {
		if len(r.b) < 1 {
			return nil, fmt.Errorf("%w: key log ends before event %d of %d", ErrMalformed, i+1, count)
		}
		e := Event{Type: EventType(r.b[0])}
		if e.size() == 0 {
			return nil, fmt.Errorf("%w: event %d has unknown type %d", ErrMalformed, i+1, r.b[0])
		}
		if len(r.b) < e.size() {
			return nil, fmt.Errorf("%w: key log ends inside event %d", ErrMalformed, i+1)
		}
		r.u8()
		e.Time = r.u64()
		e.Signer = r.key()
		switch e.Type {
		case EventRotate:
			rotations++
			e.Next = r.key()
			e.Pubkey = r.key()
		case EventMove:
			e.To = r.key()
			e.ToKey = r.key()
		}
		e.Signature = r.sig()
		if e.Type == EventMove {
			e.ToSignature = r.sig()
		}
		l.Events = append(l.Events, e)
	}
	if rotations > block.MaxRotations {
		return nil, fmt.Errorf("%w: %d rotations, at most %d", ErrMalformed, rotations, block.MaxRotations)
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last key event", ErrMalformed, len(r.b))
	}
	return l, nil
}

// KeyState is what a key log says of its identity now: the current key
// and pubkey block, or that the identity ended.
type KeyState struct {
	Address    block.ID
	Inception  *identity.PublicKey
	Generation int                         // rotations so far
	SignKey    [ed25519.PublicKeySize]byte // the current signing key
	Next       [block.NextSize]byte        // the commitment the current state carries
	Pubkey     block.ID                    // the current pubkey block's ID (Address at generation 0)
	// Keys is every generation's signing key, oldest first: a co-signature
	// by the identity (a move to it, a name certificate) may come from any.
	Keys [][ed25519.PublicKeySize]byte
	// RetiredAt[g] is when generation g's key stopped being current (the
	// time of the rotation that followed it), for every g < Generation.
	RetiredAt []time.Time
	Events    int
	Changed   time.Time // time of the last event; zero without events
	Head      [32]byte  // chain hash after the last event (the address without events)

	Revoked  bool
	Moved    bool
	MovedTo  block.ID
	MovedKey [ed25519.PublicKeySize]byte // the new identity's key that co-signed the move
	// Forked is set by ResolveKeyLog when nodes answered logs that
	// disagree: then the state is the part they share.
	Forked bool
}

// InitialState is the state of an identity whose key log has no events:
// its inception block alone.
func InitialState(inception *identity.PublicKey) KeyState {
	s := KeyState{Address: inception.ID, Inception: inception, Next: inception.Next, Pubkey: inception.ID, Head: inception.ID}
	copy(s.SignKey[:], inception.SignKey)
	s.Keys = [][ed25519.PublicKeySize]byte{s.SignKey}
	return s
}

// Terminal reports whether the identity ended: revoked or moved.
func (s *KeyState) Terminal() bool { return s.Revoked || s.Moved }

// HadKey reports whether k was the signing key of some generation.
func (s *KeyState) HadKey(k [ed25519.PublicKeySize]byte) bool {
	for _, h := range s.Keys {
		if h == k {
			return true
		}
	}
	return false
}

// ErrMoved is what Sendable returns for an identity that moved; the error
// names the new address.
var ErrMoved = errors.New("record: moved")

// Sendable reports whether mail may be sealed to the identity now: not
// revoked, not moved, its key history not forked.
func (s *KeyState) Sendable() error {
	switch {
	case s.Revoked:
		return fmt.Errorf("%w: %s revoked its key: it must not be used any more", ErrRevoked, identity.FormatAddress(s.Address))
	case s.Forked:
		return fmt.Errorf("%w: the key history of %s forked (two histories signed with its keys): its keys are compromised", ErrForked, identity.FormatAddress(s.Address))
	case s.Moved:
		return fmt.Errorf("%w: %s moved to %s", ErrMoved, identity.FormatAddress(s.Address), identity.FormatAddress(s.MovedTo))
	}
	return nil
}

// SignedBy checks a signature a recipient received from this identity,
// made by key at time signed (an envelope's time): the identity must be
// usable (not revoked, not forked; a moved identity's earlier mail still
// counts), and key the current key, or an earlier generation's key when
// signed is no later than the rotation that retired it.
func (s *KeyState) SignedBy(key [ed25519.PublicKeySize]byte, signed time.Time) error {
	switch {
	case s.Revoked:
		return fmt.Errorf("%w: %s revoked its key; its mail is refused", ErrRevoked, identity.FormatAddress(s.Address))
	case s.Forked:
		return fmt.Errorf("%w: the key history of %s forked; its mail is refused", ErrForked, identity.FormatAddress(s.Address))
	case key == s.SignKey:
		return nil
	}
	for g, k := range s.Keys[:s.Generation] {
		if k == key {
			if signed.After(s.RetiredAt[g]) {
				return fmt.Errorf("%w: signed at %s by generation %d of %s, retired at %s", ErrWrongKey,
					signed.UTC().Format(time.RFC3339), g, identity.FormatAddress(s.Address), s.RetiredAt[g].UTC().Format(time.RFC3339))
			}
			return nil
		}
	}
	return fmt.Errorf("%w: not a key of %s", ErrWrongKey, identity.FormatAddress(s.Address))
}

// CheckPubkey checks that p is the current pubkey block: its ID, its
// signing key and its commitment are the state's.
func (s *KeyState) CheckPubkey(p *identity.PublicKey) error {
	if p.ID != s.Pubkey || !bytes.Equal(p.SignKey, s.SignKey[:]) || p.Next != s.Next {
		return fmt.Errorf("%w: pubkey block %v is not generation %d of %s", ErrMismatch, p.ID.Short(), s.Generation, identity.FormatAddress(s.Address))
	}
	return nil
}

// State verifies the log standalone and folds it: every event's signer
// against the state before it, every signature, the chain.
func (l *KeyLog) State() (KeyState, error) { return l.verify() }

func (l *KeyLog) verify() (KeyState, error) {
	p0, err := identity.ParsePubkey(l.Inception)
	if err != nil {
		if errors.Is(err, block.ErrSignature) {
			return KeyState{}, fmt.Errorf("%w: inception block: %w", ErrSignature, err)
		}
		return KeyState{}, fmt.Errorf("%w: inception block: %w", ErrMalformed, err)
	}
	s := InitialState(p0)
	last := uint64(p0.Created.Unix())
	for i := range l.Events {
		e := &l.Events[i]
		seq := i + 1
		if s.Terminal() {
			return KeyState{}, fmt.Errorf("%w: event %d (%v) comes after the identity ended", ErrRevoked, seq, e.Type)
		}
		if e.Time > maxTime {
			return KeyState{}, fmt.Errorf("%w: event %d is dated past year 10^11", ErrMalformed, seq)
		}
		if e.Time < last {
			return KeyState{}, fmt.Errorf("%w: event %d is dated before the one it follows", ErrMalformed, seq)
		}
		last = e.Time
		committed := block.NextCommitment(e.Signer[:]) == s.Next
		switch {
		case e.Type == EventRevoke && !committed && e.Signer != s.SignKey:
			return KeyState{}, fmt.Errorf("%w: event %d (revoke) is signed by neither the current key nor the committed next key", ErrWrongKey, seq)
		case e.Type != EventRevoke && !committed:
			return KeyState{}, fmt.Errorf("%w: event %d (%v) is not signed by the key generation %d committed to", ErrWrongKey, seq, e.Type, s.Generation)
		}
		msg := e.message(seq, s.Head)
		if !verifySig(e.Signer, msg, e.Signature) {
			return KeyState{}, fmt.Errorf("%w: event %d (%v)", ErrSignature, seq, e.Type)
		}
		switch e.Type {
		case EventRotate:
			s.Generation++
			s.SignKey, s.Next, s.Pubkey = e.Signer, e.Next, e.Pubkey
			s.Keys = append(s.Keys, e.Signer)
			s.RetiredAt = append(s.RetiredAt, time.Unix(int64(e.Time), 0))
		case EventRevoke:
			s.Revoked = true
		case EventMove:
			if e.To == s.Address || e.To.IsZero() {
				return KeyState{}, fmt.Errorf("%w: event %d moves the identity to itself or to nothing", ErrMalformed, seq)
			}
			if !verifySig(e.ToKey, msg, e.ToSignature) {
				return KeyState{}, fmt.Errorf("%w: event %d (move): the new identity's signature", ErrSignature, seq)
			}
			s.Moved, s.MovedTo, s.MovedKey = true, e.To, e.ToKey
		}
		s.Head = block.LabeledHash(labelKeyEvent, s.Head[:], e.append(nil))
		s.Events = seq
		s.Changed = time.Unix(int64(e.Time), 0)
	}
	return s, nil
}

// CheckMove checks a move against the state of the identity it names:
// from moved to to's address, the key that co-signed the move is one to
// has had, and to is itself usable. Nodes cannot check this (it needs to's
// key log); a resolver that follows a move must.
func CheckMove(from, to KeyState) error {
	switch {
	case !from.Moved:
		return fmt.Errorf("%w: %s did not move", ErrMismatch, identity.FormatAddress(from.Address))
	case from.MovedTo != to.Address:
		return fmt.Errorf("%w: %s moved to %s, not %s", ErrMismatch, identity.FormatAddress(from.Address), identity.FormatAddress(from.MovedTo), identity.FormatAddress(to.Address))
	case !to.HadKey(from.MovedKey):
		return fmt.Errorf("%w: the move to %s is co-signed by a key that address never had", ErrWrongKey, identity.FormatAddress(to.Address))
	}
	return to.Sendable()
}
