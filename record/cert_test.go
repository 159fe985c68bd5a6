package record

import (
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
)

func TestNameCertificateChecks(t *testing.T) {
	r := testRand(t)
	alice, mallory := newOwner(t, r), newOwner(t, r)
	domain, rogue := KeySigner(ed25519Key(1)), KeySigner(ed25519Key(2))
	listed := [][ed25519.PublicKeySize]byte{keyOf(domain)}
	nb := uint64(t0.Unix())
	cert := func(n NameCert, d, u Signer) *Record {
		t.Helper()
		rec, err := SignName(n, d, u)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	nc := NameCert{Name: "alice@example.test", Address: alice.id.ID(), Version: Version{Seq: 1, NotBefore: nb, NotAfter: nb + 86400*30}}
	signed := cert(nc, domain, alice.id)
	alice.rotate(t, 1, r) // the binding survives the owner's rotation
	now := t0.Add(2 * time.Hour)
	if err := signed.Name.Check(listed, alice.state(t), now); err != nil {
		t.Fatalf("a certificate co-signed before a rotation: %v", err)
	}
	if signed.Slot() != NameSlot("alice@example.test", keyOf(domain)) || signed.Slot() == NameSlot("alice@example.test", keyOf(rogue)) {
		t.Fatal("slot")
	}
	// A domain key that DNS does not list.
	if err := cert(nc, rogue, alice.gens[0]).Name.Check(listed, alice.state(t), now); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("unlisted domain key: %v", err)
	}
	// The domain binds alice's name to alice's address but co-signs with
	// mallory's key: nodes cannot tell, resolvers refuse.
	if err := cert(nc, domain, mallory.id).Name.Check(listed, alice.state(t), now); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("co-signed by a key the address never had: %v", err)
	}
	if err := signed.Name.Check(listed, mallory.state(t), now); !errors.Is(err, ErrMismatch) {
		t.Fatalf("checked against another address: %v", err)
	}
	for name, at := range map[string]time.Time{"expired": t0.Add(31 * 24 * time.Hour), "not yet valid": t0.Add(-time.Second)} {
		if err := signed.Name.Check(listed, alice.state(t), at); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	rev := nc
	rev.Version = Version{Seq: 2, Prev: block.Sum(signed.Bytes()), Revoked: true, NotBefore: nb, NotAfter: nb + 86400*30}
	revoked := cert(rev, domain, nil)
	if err := revoked.Name.Check(listed, alice.state(t), now); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked certificate: %v", err)
	}
	if err := Supersedes(signed, revoked); err != nil {
		t.Fatalf("the domain alone revokes: %v", err)
	}
	// Without the user, a live binding is not a certificate.
	if _, err := SignName(nc, domain, nil); !errors.Is(err, ErrSignature) {
		t.Fatalf("binding without the user's signature: %v", err)
	}
	moved, err := Move(alice.log, alice.next, mallory.id, now)
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := moved.KeyLog.State()
	if err := signed.Name.Check(listed, ms, now); !errors.Is(err, ErrMoved) {
		t.Fatalf("name of a moved address: %v", err)
	}
}

func TestDelegationChecks(t *testing.T) {
	r := testRand(t)
	o := newOwner(t, r)
	nb := uint64(t0.Unix())
	d := Delegation{Owner: o.id.ID(), Delegates: []block.ID{{9}, {3}}, Version: Version{Seq: 1, NotBefore: nb, NotAfter: nb + uint64(MaxDelegation/time.Second)}}
	rec, err := SignDelegation(d, o.id)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Delegation.Includes(block.ID{3}) || rec.Delegation.Includes(block.ID{4}) || rec.Delegation.Delegates[0] != (block.ID{3}) {
		t.Fatal("delegates not sorted or not found")
	}
	now := t0.Add(time.Hour)
	if err := rec.Delegation.Check(o.state(t), now); err != nil {
		t.Fatal(err)
	}
	if err := rec.Delegation.Check(o.state(t), t0.Add(MaxDelegation)); !errors.Is(err, ErrExpired) {
		t.Fatalf("at not_after: %v", err)
	}
	d.Version.NotAfter++
	if _, err := SignDelegation(d, o.id); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a delegation one second over 30 days: %v", err)
	}
	// A rotation ends the delegations signed before it.
	o.rotate(t, 2, r)
	if err := rec.Delegation.Check(o.state(t), now); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("after the owner rotated: %v", err)
	}
	again, err := SignDelegation(Delegation{Owner: o.id.ID(), Delegates: []block.ID{{3}}, Version: Version{Seq: 1, NotBefore: nb, NotAfter: nb + 86400}}, o.id)
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Delegation.Check(o.state(t), now); err != nil {
		t.Fatalf("re-signed after the rotation: %v", err)
	}
	if again.Slot() == rec.Slot() {
		t.Fatal("a new key must sign into a new slot")
	}
}

func TestSafetyCodeIsSymmetricAndSpreads(t *testing.T) {
	a, b, c := block.ID{1}, block.ID{2}, block.ID{3}
	ab, ba := SafetyCode(a, b), SafetyCode(b, a)
	if ab != ba {
		t.Fatalf("%s vs %s", ab, ba)
	}
	if len(ab) != 35 || ab == SafetyCode(a, c) || ab == SafetyCode(b, c) {
		t.Fatalf("code %q", ab)
	}
}
