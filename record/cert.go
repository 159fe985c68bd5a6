package record

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

// Certificate limits (docs/PROTOCOL.md 15.2, 15.3).
const (
	// MaxDelegation is the longest a delegation certificate lasts: a
	// server keeps a user's mail on a signature at most this old.
	MaxDelegation = 30 * 24 * time.Hour
	// MaxDelegates is how many nodes one delegation names.
	MaxDelegates = 4
	// MaxNameValidity is the longest a name certificate lasts; renewing
	// needs both the domain and the user, so a year, not weeks.
	MaxNameValidity = 366 * 24 * time.Hour

	flagRevoked = 0x01
	versionSize = 4 + 32 + 1 + 8 + 8
	maxTime     = 1 << 62 // Unix seconds: far beyond any real date, safe for time.Unix
)

// Version is what every certificate carries to be replaced and ended: a
// sequence number from 1, the ID (block.Sum) of the version it replaces
// (zero for seq 1), a terminal revoked flag, and its validity.
type Version struct {
	Seq       uint32
	Prev      block.ID
	Revoked   bool
	NotBefore uint64 // Unix seconds, inclusive
	NotAfter  uint64 // Unix seconds, exclusive
}

func (v *Version) append(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, v.Seq)
	dst = append(dst, v.Prev[:]...)
	flags := byte(0)
	if v.Revoked {
		flags = flagRevoked
	}
	dst = append(dst, flags)
	dst = binary.BigEndian.AppendUint64(dst, v.NotBefore)
	return binary.BigEndian.AppendUint64(dst, v.NotAfter)
}

func (v *Version) decode(r *reader, longest time.Duration) error {
	v.Seq, v.Prev = r.u32(), r.key()
	flags := r.u8()
	v.NotBefore, v.NotAfter = r.u64(), r.u64()
	switch {
	case flags&^flagRevoked != 0:
		return fmt.Errorf("%w: reserved flag bits %#02x", ErrMalformed, flags)
	case v.Seq == 0:
		return fmt.Errorf("%w: sequence number 0 (the first version is 1)", ErrMalformed)
	case (v.Seq == 1) != v.Prev.IsZero():
		return fmt.Errorf("%w: version %d with prev %v: prev is zero exactly for version 1", ErrMalformed, v.Seq, v.Prev.Short())
	case v.NotAfter > maxTime || v.NotBefore >= v.NotAfter:
		return fmt.Errorf("%w: validity %d to %d is empty or out of range", ErrMalformed, v.NotBefore, v.NotAfter)
	case v.NotAfter-v.NotBefore > uint64(longest/time.Second):
		return fmt.Errorf("%w: valid for %v, at most %v", ErrMalformed, time.Duration(v.NotAfter-v.NotBefore)*time.Second, longest)
	}
	v.Revoked = flags&flagRevoked != 0
	return nil
}

// checkTime reports whether now is inside the validity.
func (v *Version) checkTime(now time.Time) error {
	t := now.Unix()
	switch {
	case t < int64(v.NotBefore):
		return fmt.Errorf("%w: valid from %s", ErrNotYetValid, time.Unix(int64(v.NotBefore), 0).UTC().Format(time.RFC3339))
	case t >= int64(v.NotAfter):
		return fmt.Errorf("%w: valid until %s", ErrExpired, time.Unix(int64(v.NotAfter), 0).UTC().Format(time.RFC3339))
	}
	return nil
}

// Delegation lets nodes hold and receive an owner's mail (never read it:
// it carries no key that opens anything), signed by the owner's signing
// key. Resolvers accept it only while Signer is the owner's current key.
type Delegation struct {
	Owner     block.ID
	Signer    [ed25519.PublicKeySize]byte
	Version   Version
	Delegates []block.ID // node addresses, strictly ascending; none is a withdrawal
	Signature [ed25519.SignatureSize]byte
}

const delegationFixed = recordPrefix + 32 + 32 + versionSize + 1 + 64

// Encode returns the record's bytes.
func (d *Delegation) Encode() []byte {
	b := d.appendUnsigned(make([]byte, 0, delegationFixed+32*len(d.Delegates)))
	return append(b, d.Signature[:]...)
}

func (d *Delegation) appendUnsigned(b []byte) []byte {
	b = appendPrefix(b, KindDelegation)
	b = append(b, d.Owner[:]...)
	b = append(b, d.Signer[:]...)
	b = d.Version.append(b)
	b = append(b, byte(len(d.Delegates)))
	for _, n := range d.Delegates {
		b = append(b, n[:]...)
	}
	return b
}

func decodeDelegation(body []byte) (*Delegation, error) {
	if len(body) < delegationFixed-recordPrefix {
		return nil, fmt.Errorf("%w: delegation of %d bytes, at least %d", ErrMalformed, recordPrefix+len(body), delegationFixed)
	}
	r := reader{body}
	d := &Delegation{Owner: r.key(), Signer: r.key()}
	if err := d.Version.decode(&r, MaxDelegation); err != nil {
		return nil, err
	}
	count := int(r.u8())
	if count > MaxDelegates {
		return nil, fmt.Errorf("%w: %d delegates, at most %d", ErrMalformed, count, MaxDelegates)
	}
	if len(r.b) != 32*count+64 {
		return nil, fmt.Errorf("%w: %d bytes for %d delegates and the signature, want %d", ErrMalformed, len(r.b), count, 32*count+64)
	}
	for i := range count {
		n := block.ID(r.key())
		switch {
		case n.IsZero() || n == d.Owner:
			return nil, fmt.Errorf("%w: delegate %d is zero or the owner", ErrMalformed, i+1)
		case i > 0 && !block.Less(d.Delegates[i-1], n):
			return nil, fmt.Errorf("%w: delegates not in strictly ascending order", ErrMalformed)
		}
		d.Delegates = append(d.Delegates, n)
	}
	d.Signature = r.sig()
	return d, nil
}

func (d *Delegation) verify(b []byte) error {
	if !verifySig(d.Signer, b[:len(b)-ed25519.SignatureSize], d.Signature) {
		return fmt.Errorf("%w: delegation of %s", ErrSignature, identity.FormatAddress(d.Owner))
	}
	return nil
}

// Check reports whether the delegation holds at now for an owner in state
// owner (ResolveKeyLog): signed by the owner's current key, neither it nor
// the owner revoked or moved, now within its dates.
func (d *Delegation) Check(owner KeyState, now time.Time) error {
	switch {
	case owner.Address != d.Owner:
		return fmt.Errorf("%w: delegation of %s checked against %s", ErrMismatch, identity.FormatAddress(d.Owner), identity.FormatAddress(owner.Address))
	case d.Version.Revoked:
		return fmt.Errorf("%w: the delegation was revoked", ErrRevoked)
	}
	if err := owner.Sendable(); err != nil {
		return err
	}
	if d.Signer != owner.SignKey {
		return fmt.Errorf("%w: the delegation is not signed by the owner's current key (generation %d)", ErrWrongKey, owner.Generation)
	}
	return d.Version.checkTime(now)
}

// Delegates reports whether node is among those the delegation names.
func (d *Delegation) Includes(node block.ID) bool { return slices.Contains(d.Delegates, node) }

// NameCert binds a normalised name (local@domain) to an address, signed by
// the domain's key (listed in DNS) and co-signed by a signing key of the
// address, so a domain can never bind a name to a key without its owner.
// A revoked version needs only the domain: its user signature is zero.
type NameCert struct {
	Name            string
	Address         block.ID
	DomainKey       [ed25519.PublicKeySize]byte
	UserKey         [ed25519.PublicKeySize]byte
	Version         Version
	DomainSignature [ed25519.SignatureSize]byte
	UserSignature   [ed25519.SignatureSize]byte
}

const nameFixed = recordPrefix + 1 + 32 + 32 + 32 + versionSize + 64 + 64

// Encode returns the record's bytes.
func (n *NameCert) Encode() []byte {
	b := n.appendUnsigned(make([]byte, 0, nameFixed+len(n.Name)))
	b = append(b, n.DomainSignature[:]...)
	return append(b, n.UserSignature[:]...)
}

func (n *NameCert) appendUnsigned(b []byte) []byte {
	b = appendPrefix(b, KindName)
	b = append(b, byte(len(n.Name)))
	b = append(b, n.Name...)
	b = append(b, n.Address[:]...)
	b = append(b, n.DomainKey[:]...)
	b = append(b, n.UserKey[:]...)
	return n.Version.append(b)
}

// SignedBytes is what the domain and the user both sign (under the record
// label): the record up to the signatures.
func (n *NameCert) SignedBytes() []byte { return n.appendUnsigned(nil) }

func decodeName(body []byte) (*NameCert, error) {
	if len(body) < 1 {
		return nil, fmt.Errorf("%w: no name", ErrMalformed)
	}
	size := int(body[0])
	if len(body) != nameFixed-recordPrefix+size {
		return nil, fmt.Errorf("%w: name certificate of %d bytes, want %d for a %d-byte name", ErrMalformed, recordPrefix+len(body), nameFixed+size, size)
	}
	r := reader{body[1:]}
	n := &NameCert{Name: string(r.bytes(size))}
	if norm, err := Normalise(n.Name); err != nil {
		return nil, err
	} else if norm != n.Name {
		return nil, fmt.Errorf("%w: %q is not in normal form (%q)", ErrName, n.Name, norm)
	}
	n.Address, n.DomainKey, n.UserKey = r.key(), r.key(), r.key()
	if n.Address.IsZero() {
		return nil, fmt.Errorf("%w: binds %s to the zero address", ErrMalformed, n.Name)
	}
	if err := n.Version.decode(&r, MaxNameValidity); err != nil {
		return nil, err
	}
	n.DomainSignature, n.UserSignature = r.sig(), r.sig()
	if n.Version.Revoked && n.UserSignature != ([64]byte{}) {
		return nil, fmt.Errorf("%w: a revoked name certificate carries no user signature", ErrMalformed)
	}
	return n, nil
}

func (n *NameCert) verify(b []byte) error {
	msg := b[:len(b)-2*ed25519.SignatureSize]
	if !verifySig(n.DomainKey, msg, n.DomainSignature) {
		return fmt.Errorf("%w: the domain's signature on %s", ErrSignature, n.Name)
	}
	if !n.Version.Revoked && !verifySig(n.UserKey, msg, n.UserSignature) {
		return fmt.Errorf("%w: the user's signature on %s", ErrSignature, n.Name)
	}
	return nil
}

// Check reports whether the certificate holds at now, given the keys the
// domain lists in DNS and the state of the bound address: signed by a
// listed key, not revoked, within its dates, co-signed by a key the address
// has had, the address neither revoked nor moved.
func (n *NameCert) Check(domainKeys [][ed25519.PublicKeySize]byte, bound KeyState, now time.Time) error {
	switch {
	case !slices.Contains(domainKeys, n.DomainKey):
		return fmt.Errorf("%w: %s is signed by a key its domain does not list", ErrWrongKey, n.Name)
	case n.Version.Revoked:
		return fmt.Errorf("%w: the domain revoked %s", ErrRevoked, n.Name)
	case bound.Address != n.Address:
		return fmt.Errorf("%w: certificate binds %s, checked against %s", ErrMismatch, identity.FormatAddress(n.Address), identity.FormatAddress(bound.Address))
	}
	if err := bound.Sendable(); err != nil {
		return err
	}
	if !bound.HadKey(n.UserKey) {
		return fmt.Errorf("%w: %s is co-signed by a key %s never had", ErrWrongKey, n.Name, identity.FormatAddress(n.Address))
	}
	return n.Version.checkTime(now)
}
