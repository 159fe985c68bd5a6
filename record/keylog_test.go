package record

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

func TestRotationKeepsTheAddressAndMovesTheKey(t *testing.T) {
	r := testRand(t)
	o := newOwner(t, r)
	addr := o.id.ID()
	if s := o.state(t); s.Generation != 0 || s.Pubkey != addr || s.Events != 0 || s.Head != addr {
		t.Fatalf("fresh log state %+v", s)
	}
	o.rotate(t, 1, r)
	o.rotate(t, 2, r)
	s := o.state(t)
	switch {
	case s.Address != addr || o.id.ID() != addr:
		t.Fatal("the address changed")
	case s.Generation != 2 || s.Events != 2 || len(s.Keys) != 3:
		t.Fatalf("generation %d, %d events, %d keys", s.Generation, s.Events, len(s.Keys))
	case !bytes.Equal(s.SignKey[:], o.id.VerifyKey()) || s.Pubkey != o.id.Public().ID || s.Next != o.next.Commitment():
		t.Fatal("the state is not the owner's current generation")
	case !s.Changed.Equal(t0.Add(2 * time.Hour)):
		t.Fatalf("changed %v", s.Changed)
	case s.Terminal() || s.Sendable() != nil:
		t.Fatal("a rotated identity is not sendable")
	}
	if err := s.CheckPubkey(o.id.Public()); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckPubkey(o.gens[1].Public()); !errors.Is(err, ErrMismatch) {
		t.Fatalf("the previous pubkey block passed as current: %v", err)
	}
	if o.log.Slot() != KeyLogSlot(addr) || KeyLogSlot(addr) == addr {
		t.Fatal("slot")
	}
	if !bytes.Equal(o.log.Encode(), o.log.Bytes()) {
		t.Fatal("re-encoding differs")
	}
}

// TestThiefWithTheCurrentKeyCannotRotate: whatever a thief holding only
// the current generation signs, nodes refuse it as signed by the wrong
// key, and the builders refuse to make it.
func TestThiefWithTheCurrentKeyCannotRotate(t *testing.T) {
	r := testRand(t)
	o := newOwner(t, r)
	o.rotate(t, 1, r)
	s := o.state(t)
	thief, thiefNext, err := identity.New(8, t0, r) // the thief's own keys for the new generation
	if err != nil {
		t.Fatal(err)
	}
	// The thief signs with the stolen current key, naming it as signer.
	e := Event{Type: EventRotate, Time: uint64(t0.Add(3 * time.Hour).Unix()), Next: thief.Public().Next, Pubkey: thief.Public().ID}
	copy(e.Signer[:], o.id.VerifyKey())
	e.Signature = signWith(privateOf(o.id), &e, s.Events+1, s.Head)
	if _, err := Parse(withEvent(o.log, e)); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("rotation signed by the current key: %v, want ErrWrongKey", err)
	}
	// Or with a key of its own.
	copy(e.Signer[:], thief.VerifyKey())
	e.Signature = signWith(privateOf(thief), &e, s.Events+1, s.Head)
	if _, err := Parse(withEvent(o.log, e)); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("rotation signed by a made-up key: %v, want ErrWrongKey", err)
	}
	// Or moves the identity away.
	m := Event{Type: EventMove, Time: e.Time, To: thief.ID()}
	copy(m.Signer[:], o.id.VerifyKey())
	copy(m.ToKey[:], thief.VerifyKey())
	m.Signature = signWith(privateOf(o.id), &m, s.Events+1, s.Head)
	m.ToSignature = signWith(privateOf(thief), &m, s.Events+1, s.Head)
	if _, err := Parse(withEvent(o.log, m)); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("move signed by the current key: %v, want ErrWrongKey", err)
	}
	if _, err := Rotate(o.log, o.id, thiefNext, 8, t0, r); !errors.Is(err, identity.ErrNextKeyMismatch) {
		t.Fatalf("Rotate with another next key: %v", err)
	}
	if _, err := Move(o.log, thiefNext, thief, t0); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("Move with another next key: %v", err)
	}
	// A thief holding a key retired by a rotation cannot even revoke.
	if _, err := Revoke(o.log, o.gens[0], t0); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("revoke by a retired key: %v", err)
	}
}

func TestRevocationByTheCurrentOrTheNextKey(t *testing.T) {
	r := testRand(t)
	for name, by := range map[string]func(o *owner) Signer{
		"current key": func(o *owner) Signer { return o.id },
		"next key":    func(o *owner) Signer { return o.next },
	} {
		t.Run(name, func(t *testing.T) {
			o := newOwner(t, r)
			o.rotate(t, 1, r)
			log, err := Revoke(o.log, by(o), t0.Add(2*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			s, err := log.KeyLog.State()
			if err != nil {
				t.Fatal(err)
			}
			if !s.Revoked || !s.Terminal() || s.Generation != 1 {
				t.Fatalf("state %+v", s)
			}
			if err := s.Sendable(); !errors.Is(err, ErrRevoked) {
				t.Fatalf("Sendable: %v", err)
			}
			// Nothing follows a revocation, whoever signs it.
			if _, err := Rotate(log, o.id, o.next, 8, t0.Add(3*time.Hour), r); !errors.Is(err, ErrRevoked) {
				t.Fatalf("rotate after revoke: %v", err)
			}
			e := Event{Type: EventRotate, Time: uint64(t0.Add(3 * time.Hour).Unix()), Next: o.id.Public().Next, Pubkey: o.id.Public().ID}
			copy(e.Signer[:], o.next.VerifyKey())
			e.Signature = o.next.Sign(block.LabelRecord, e.message(s.Events+1, s.Head))
			if _, err := Parse(withEvent(log, e)); !errors.Is(err, ErrRevoked) {
				t.Fatalf("log with an event after the revocation: %v, want ErrRevoked", err)
			}
		})
	}
}

func TestMoveIsSignedByTheNextKeyAndTheNewIdentity(t *testing.T) {
	r := testRand(t)
	o, dest := newOwner(t, r), newOwner(t, r)
	o.rotate(t, 1, r)
	log, err := Move(o.log, o.next, dest.id, t0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	s, err := log.KeyLog.State()
	if err != nil {
		t.Fatal(err)
	}
	if !s.Moved || s.MovedTo != dest.id.ID() || !s.Terminal() {
		t.Fatalf("state %+v", s)
	}
	if err := s.Sendable(); !errors.Is(err, ErrMoved) {
		t.Fatalf("Sendable: %v", err)
	}
	// The new identity rotates after the move: its old key still proves the move.
	dest.rotate(t, 3, r)
	if err := CheckMove(s, dest.state(t)); err != nil {
		t.Fatal(err)
	}
	if err := CheckMove(s, newOwner(t, r).state(t)); !errors.Is(err, ErrMismatch) {
		t.Fatalf("move checked against another identity: %v", err)
	}
	// A move co-signed by a key the destination never had.
	e := log.KeyLog.Events[1]
	stranger := newOwner(t, r)
	copy(e.ToKey[:], stranger.id.VerifyKey())
	prev := o.state(t)
	e.ToSignature = signWith(privateOf(stranger.id), &e, 2, prev.Head)
	e.Signature = o.next.Sign(block.LabelRecord, e.message(2, prev.Head))
	forged := mustParse(t, withEvent(o.log, e)) // valid standalone: nodes cannot tell
	fs, _ := forged.KeyLog.State()
	if err := CheckMove(fs, dest.state(t)); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("move co-signed by a stranger: %v", err)
	}
	// The co-signature must verify.
	e.ToSignature[0] ^= 1
	if _, err := Parse(withEvent(o.log, e)); !errors.Is(err, ErrSignature) {
		t.Fatalf("bad co-signature: %v", err)
	}
	if _, err := Move(o.log, o.next, o.id, t0); err == nil {
		t.Fatal("moved to itself")
	}
}

func TestKeyLogHoldsMaxRotationsAndAMove(t *testing.T) {
	r := testRand(t)
	o, dest := newOwner(t, r), newOwner(t, r)
	for i := range block.MaxRotations {
		o.rotate(t, i+1, r)
	}
	if _, err := Rotate(o.log, o.id, o.next, 8, t0.Add(100*time.Hour), r); !errors.Is(err, identity.ErrTooManyRotations) {
		t.Fatalf("rotation %d: %v", block.MaxRotations+1, err)
	}
	log, err := Move(o.log, o.next, dest.id, t0.Add(100*time.Hour))
	if err != nil {
		t.Fatalf("a full log must still take its move: %v", err)
	}
	if len(log.Bytes()) > block.MaxRecordSize {
		t.Fatalf("%d bytes", len(log.Bytes()))
	}
	t.Logf("largest key log: %d bytes of %d", len(log.Bytes()), block.MaxRecordSize)
	// One rotation more than allowed is refused by the decoder even
	// though it would fit in the bytes.
	s := o.state(t)
	e := Event{Type: EventRotate, Time: uint64(t0.Add(200 * time.Hour).Unix()), Next: s.Next, Pubkey: s.Pubkey}
	copy(e.Signer[:], o.next.VerifyKey())
	e.Signature = o.next.Sign(block.LabelRecord, e.message(s.Events+1, s.Head))
	b := withEvent(o.log, e)
	if len(b) > block.MaxRecordSize {
		t.Fatalf("test assumption: %d bytes", len(b))
	}
	if _, err := Decode(b); !errors.Is(err, ErrMalformed) {
		t.Fatalf("%d rotations: %v", block.MaxRotations+1, err)
	}
}

func TestKeyLogRefusals(t *testing.T) {
	r := testRand(t)
	o := newOwner(t, r)
	o.rotate(t, 1, r)
	good := o.log.Bytes()
	s := o.state(t)
	at := func(i int, f func(b []byte)) []byte { b := bytes.Clone(good); f(b[i:]); return b }
	evAt := keyLogFixed // the first event
	backdated := Event{Type: EventRotate, Time: uint64(t0.Unix()) - 1, Next: s.Next, Pubkey: s.Pubkey}
	copy(backdated.Signer[:], o.next.VerifyKey())
	backdated.Signature = o.next.Sign(block.LabelRecord, backdated.message(2, s.Head))
	for name, tc := range map[string]struct {
		b    []byte
		want error
	}{
		"oversized":             {append(bytes.Clone(good), make([]byte, block.MaxRecordSize)...), ErrTooLarge},
		"flipped signature":     {at(len(good)-1, func(b []byte) { b[0] ^= 1 }), ErrSignature},
		"flipped time":          {at(evAt+8, func(b []byte) { b[0] ^= 1 }), ErrSignature},
		"inception signature":   {at(recordPrefix+block.PubkeySize-1, func(b []byte) { b[0] ^= 1 }), ErrSignature},
		"unknown event type":    {at(evAt, func(b []byte) { b[0] = 9 }), ErrMalformed},
		"count beyond events":   {at(keyLogFixed-1, func(b []byte) { b[0] = 2 }), ErrMalformed},
		"count below events":    {at(keyLogFixed-1, func(b []byte) { b[0] = 0 }), ErrMalformed},
		"trailing byte":         {append(bytes.Clone(good), 0), ErrMalformed},
		"unknown kind":          {at(block.HeaderSize, func(b []byte) { b[0] = 9 }), ErrKind},
		"deletion flag":         {at(2, func(b []byte) { b[0] = 1 }), ErrMalformed},
		"not a record":          {o.id.Public().Block, ErrMalformed},
		"dated before the last": {withEvent(o.log, backdated), ErrMalformed},
	} {
		if _, err := Parse(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

// TestRevokeByCurrentKeyIsARace documents the one power a thief with the
// current key has: revoking first. The owner's rotation, signed next,
// then forks from it and nodes that saw the revocation refuse it.
func TestRevokeByCurrentKeyIsARace(t *testing.T) {
	r := testRand(t)
	o := newOwner(t, r)
	revoked, err := Revoke(o.log, o.id, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	o.rotate(t, 2, r)
	if err := Supersedes(revoked, o.log); !errors.Is(err, ErrRevoked) {
		t.Fatalf("rotation offered where the revocation is held: %v", err)
	}
	if err := Supersedes(o.log, revoked); !errors.Is(err, ErrForked) {
		t.Fatalf("revocation offered where the rotation is held: %v", err)
	}
	s, err := ResolveKeyLog(o.id.ID(), [][]byte{o.log.Bytes(), revoked.Bytes()})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Forked || !s.Revoked || s.Events != 0 || s.Sendable() == nil {
		t.Fatalf("resolved %+v", s)
	}
}

// TestSignedByAcceptsRetiredKeysOnlyForEarlierMail: the recipient's rule
// for envelope signatures (15.5).
func TestSignedByAcceptsRetiredKeysOnlyForEarlierMail(t *testing.T) {
	r := testRand(t)
	o := newOwner(t, r)
	o.rotate(t, 10, r) // generation 0 retired at t0 + 10 h
	s := o.state(t)
	k0, k1 := keyOf(o.gens[0]), keyOf(o.gens[1])
	stranger := keyOf(newOwner(t, r).id)
	for name, tc := range map[string]struct {
		key  [32]byte
		at   time.Time
		want error
	}{
		"current key":                 {k1, t0.Add(20 * time.Hour), nil},
		"old key before the rotation": {k0, t0.Add(10 * time.Hour), nil},
		"old key after the rotation":  {k0, t0.Add(10*time.Hour + time.Second), ErrWrongKey},
		"a stranger's key":            {stranger, t0, ErrWrongKey},
	} {
		if err := s.SignedBy(tc.key, tc.at); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	revoked, err := Revoke(o.log, o.id, t0.Add(30*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	rs, _ := revoked.KeyLog.State()
	if err := rs.SignedBy(k1, t0.Add(20*time.Hour)); !errors.Is(err, ErrRevoked) {
		t.Fatalf("mail of a revoked identity: %v", err)
	}
}

func TestFollowsAcceptsTheChainAndRefusesAnotherHistory(t *testing.T) {
	var a, b, c [32]byte
	a[0], b[0], c[0] = 1, 2, 3
	s := KeyState{Generation: 1, Keys: [][32]byte{a, b}}
	for _, tc := range []struct {
		name   string
		pinned [][32]byte
		ok     bool
	}{
		{"NothingPinned", nil, true},
		{"SameHistory", [][32]byte{a, b}, true},
		{"RotatedSince", [][32]byte{a}, true},
		{"OlderThanPinned", [][32]byte{a, b, c}, false},
		{"AnotherBranch", [][32]byte{a, c}, false},
		{"AnotherIdentity", [][32]byte{c}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Follows(tc.pinned)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrKeyChanged)) {
				t.Fatalf("Follows(%d keys): %v, want ok=%v", len(tc.pinned), err, tc.ok)
			}
		})
	}
}
