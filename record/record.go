package record

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

// Kind is the byte after a record's header: what the record says.
type Kind uint8

// Record kinds of version 1.
const (
	KindKeyLog     Kind = 1 // an identity's key events since its inception
	KindDelegation Kind = 2 // a user lets nodes hold and receive its mail
	KindName       Kind = 3 // a domain binds local@domain to an address
)

func (k Kind) String() string {
	switch k {
	case KindKeyLog:
		return "key log"
	case KindDelegation:
		return "delegation"
	case KindName:
		return "name certificate"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Labels of the hashes records use besides block.LabelRecord (signatures
// and slots).
const (
	labelKeyEvent = "flowmail/v1 key event"
	labelName     = "flowmail/v1 name"
	labelSafety   = "flowmail/v1 safety code"
)

// recordPrefix is the size of a record's header and kind byte.
const recordPrefix = block.HeaderSize + 1

// Errors. Each refusal a node or a resolver makes has its own; test
// vectors name them by the text after "record: ".
var (
	ErrTooLarge    = errors.New("record: too large")
	ErrMalformed   = errors.New("record: malformed")
	ErrKind        = errors.New("record: unknown kind")
	ErrSignature   = errors.New("record: bad signature")
	ErrWrongKey    = errors.New("record: signed by the wrong key")
	ErrStale       = errors.New("record: stale")
	ErrForked      = errors.New("record: forked")
	ErrRevoked     = errors.New("record: revoked")
	ErrSlot        = errors.New("record: another slot")
	ErrName        = errors.New("record: invalid name")
	ErrExpired     = errors.New("record: expired")
	ErrNotYetValid = errors.New("record: not yet valid")
	ErrNotFound    = errors.New("record: not found")
	ErrMismatch    = errors.New("record: key log does not match the identity")
)

// Record is a decoded record. Records from Parse are verified; from
// Decode, only their layout is.
type Record struct {
	Kind       Kind
	KeyLog     *KeyLog     // kind 1
	Delegation *Delegation // kind 2
	Name       *NameCert   // kind 3
	raw        []byte
}

// Bytes returns the record's bytes, as stored and sent.
func (r *Record) Bytes() []byte { return r.raw }

// Slot returns the DHT key the record is stored under.
func (r *Record) Slot() block.ID {
	switch r.Kind {
	case KindKeyLog:
		return KeyLogSlot(r.KeyLog.Address())
	case KindDelegation:
		return DelegationSlot(r.Delegation.Owner, r.Delegation.Signer)
	default:
		return NameSlot(r.Name.Name, r.Name.DomainKey)
	}
}

// KeyLogSlot is where the key log of address is stored.
func KeyLogSlot(address block.ID) block.ID {
	return block.LabeledHash(block.LabelRecord, address[:], []byte{byte(KindKeyLog)})
}

// DelegationSlot is where owner's delegation signed by key is stored. The
// key is part of it, so a forger only ever fills a slot of its own key.
func DelegationSlot(owner block.ID, key [ed25519.PublicKeySize]byte) block.ID {
	return block.LabeledHash(block.LabelRecord, owner[:], []byte{byte(KindDelegation)}, key[:])
}

// NameOwner is the owner a normalised name's certificates are stored for.
func NameOwner(name string) block.ID {
	return block.LabeledHash(labelName, []byte(name))
}

// NameSlot is where the certificate for a normalised name signed by a
// domain key is stored.
func NameSlot(name string, domainKey [ed25519.PublicKeySize]byte) block.ID {
	owner := NameOwner(name)
	return block.LabeledHash(block.LabelRecord, owner[:], []byte{byte(KindName)}, domainKey[:])
}

// Encode returns the record's bytes built from its fields.
func (r *Record) Encode() []byte {
	switch r.Kind {
	case KindKeyLog:
		return r.KeyLog.Encode()
	case KindDelegation:
		return r.Delegation.Encode()
	default:
		return r.Name.Encode()
	}
}

// Decode checks a record's layout (section 15) and decodes it, without
// verifying signatures or chains. Use Parse for bytes from outside.
func Decode(b []byte) (*Record, error) {
	if len(b) > block.MaxRecordSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), block.MaxRecordSize)
	}
	h, rest, err := block.ParseHeader(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if h.Type != block.TypeRecord {
		return nil, fmt.Errorf("%w: a %v block is not a record", ErrMalformed, h.Type)
	}
	if len(rest) < 1 {
		return nil, fmt.Errorf("%w: no kind", ErrMalformed)
	}
	r := &Record{Kind: Kind(rest[0]), raw: b}
	body := rest[1:]
	switch r.Kind {
	case KindKeyLog:
		r.KeyLog, err = decodeKeyLog(body)
	case KindDelegation:
		r.Delegation, err = decodeDelegation(body)
	case KindName:
		r.Name, err = decodeName(body)
	default:
		return nil, fmt.Errorf("%w: %d", ErrKind, rest[0])
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Parse decodes a record and verifies it standalone: layout, every
// signature, the key log's chain of commitments. It is what a node runs on
// every STORE and a client on every answer.
func Parse(b []byte) (*Record, error) {
	r, err := Decode(b)
	if err != nil {
		return nil, err
	}
	switch r.Kind {
	case KindKeyLog:
		_, err = r.KeyLog.verify()
	case KindDelegation:
		err = r.Delegation.verify(b)
	case KindName:
		err = r.Name.verify(b)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// appendPrefix appends a record's header and kind.
func appendPrefix(dst []byte, k Kind) []byte {
	return append(block.Header{Version: block.Version, Type: block.TypeRecord}.Append(dst), byte(k))
}

// reader takes fixed-width fields off a byte slice whose length the caller
// checked first.
type reader struct{ b []byte }

func (r *reader) bytes(n int) []byte { v := r.b[:n]; r.b = r.b[n:]; return v }
func (r *reader) u8() uint8          { return r.bytes(1)[0] }
func (r *reader) u32() uint32        { return binary.BigEndian.Uint32(r.bytes(4)) }
func (r *reader) u64() uint64        { return binary.BigEndian.Uint64(r.bytes(8)) }
func (r *reader) key() (k [32]byte)  { copy(k[:], r.bytes(32)); return k }
func (r *reader) sig() (s [64]byte)  { copy(s[:], r.bytes(64)); return s }

// verifySig checks an Ed25519 signature over SM(record label, msg). A key
// of small order verifies nothing: under it anyone can make signatures up.
func verifySig(key [ed25519.PublicKeySize]byte, msg []byte, sig [ed25519.SignatureSize]byte) bool {
	return !smallOrder(key) && ed25519.Verify(key[:], block.SignedMessage(block.LabelRecord, msg), sig[:])
}

func smallOrder(key [ed25519.PublicKeySize]byte) bool { return identity.SmallOrder(key[:]) }

// Signer is a key that signs records: an identity.Identity (the current
// key), an identity.NextKey, or a domain key (KeySigner).
type Signer interface {
	VerifyKey() ed25519.PublicKey
	Sign(label string, data []byte) [block.SignatureSize]byte
}

// KeySigner makes a Signer of a bare Ed25519 private key (a domain key).
func KeySigner(k ed25519.PrivateKey) Signer { return keySigner{k} }

type keySigner struct{ k ed25519.PrivateKey }

func (s keySigner) VerifyKey() ed25519.PublicKey { return s.k.Public().(ed25519.PublicKey) }
func (s keySigner) Sign(label string, data []byte) [block.SignatureSize]byte {
	return [block.SignatureSize]byte(ed25519.Sign(s.k, block.SignedMessage(label, data)))
}

func keyOf(s Signer) (k [ed25519.PublicKeySize]byte) {
	copy(k[:], s.VerifyKey())
	return k
}
