package naming

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/record"
)

// A name request carries a name certificate the user co-signed to the
// domain's owner, who completes it with the domain's signature
// (docs/PROTOCOL.md 19.6). It is a file people pass around: strictly
// parsed, but only the completed certificate is trusted (record.Parse).
const (
	requestMagic = "flowmail-name-request v1\n"
	// requestFixed is every byte but the name's: magic, name_len,
	// address, domain_key, user_key, seq, prev, not_before, not_after,
	// user_signature.
	requestFixed = len(requestMagic) + 1 + 32 + 32 + 32 + 4 + 32 + 8 + 8 + 64
	// MaxRequestSize bounds a request file.
	MaxRequestSize = requestFixed + record.MaxNameSize
)

// Request is a name certificate with the user's signature and without
// the domain's.
type Request struct {
	Cert record.NameCert // DomainSignature zero, Version.Revoked false
}

// NewRequest makes the user's half of a certificate binding name
// (normalised here) to user's address, for the domain key domainKey:
// user signs (any generation's key of the address; its current one in
// practice).
func NewRequest(name string, address block.ID, domainKey Key, user record.Signer, v record.Version) (*Request, error) {
	norm, err := record.Normalise(name)
	if err != nil {
		return nil, err
	}
	if v.Revoked {
		return nil, fmt.Errorf("%w: a request never revokes (the domain revokes alone)", ErrRequest)
	}
	n := record.NameCert{Name: norm, Address: address, DomainKey: domainKey, Version: v}
	copy(n.UserKey[:], user.VerifyKey())
	n.UserSignature = user.Sign(block.LabelRecord, n.SignedBytes())
	return &Request{Cert: n}, nil
}

// Encode returns the request file's bytes.
func (r *Request) Encode() []byte {
	n := &r.Cert
	b := make([]byte, 0, requestFixed+len(n.Name))
	b = append(b, requestMagic...)
	b = append(b, byte(len(n.Name)))
	b = append(b, n.Name...)
	b = append(b, n.Address[:]...)
	b = append(b, n.DomainKey[:]...)
	b = append(b, n.UserKey[:]...)
	b = binary.BigEndian.AppendUint32(b, n.Version.Seq)
	b = append(b, n.Version.Prev[:]...)
	b = binary.BigEndian.AppendUint64(b, n.Version.NotBefore)
	b = binary.BigEndian.AppendUint64(b, n.Version.NotAfter)
	return append(b, n.UserSignature[:]...)
}

// DecodeRequest parses a request file and checks the user's signature;
// the rest (the name's normal form, the dates, the chain of versions) is
// checked when the completed certificate is parsed.
func DecodeRequest(b []byte) (*Request, error) {
	switch {
	case len(b) > MaxRequestSize:
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrRequest, len(b), MaxRequestSize)
	case len(b) < requestFixed || string(b[:len(requestMagic)]) != requestMagic:
		return nil, fmt.Errorf("%w: not a flowmail name request", ErrRequest)
	}
	b = b[len(requestMagic):]
	size := int(b[0])
	if len(b) != requestFixed-len(requestMagic)+size {
		return nil, fmt.Errorf("%w: %d bytes for a %d-byte name, want %d", ErrRequest, len(b)+len(requestMagic), size, requestFixed+size)
	}
	b = b[1:]
	n := record.NameCert{Name: string(b[:size])}
	b = b[size:]
	take := func(k int) []byte { v := b[:k]; b = b[k:]; return v }
	n.Address = block.ID(take(32))
	n.DomainKey = Key(take(32))
	n.UserKey = Key(take(32))
	n.Version.Seq = binary.BigEndian.Uint32(take(4))
	n.Version.Prev = block.ID(take(32))
	n.Version.NotBefore = binary.BigEndian.Uint64(take(8))
	n.Version.NotAfter = binary.BigEndian.Uint64(take(8))
	n.UserSignature = [ed25519.SignatureSize]byte(take(64))
	if identity.SmallOrder(n.UserKey[:]) || !ed25519.Verify(n.UserKey[:], block.SignedMessage(block.LabelRecord, n.SignedBytes()), n.UserSignature[:]) {
		return nil, fmt.Errorf("%w: the user's signature on %q does not verify", ErrRequest, clip(n.Name))
	}
	return &Request{Cert: n}, nil
}

// Complete signs the request with the domain's key and returns the
// certificate, verified as any node verifies it. The request must be for
// that key.
func (r *Request) Complete(domain ed25519.PrivateKey) (*record.Record, error) {
	n := r.Cert
	if Key(domain.Public().(ed25519.PublicKey)) != n.DomainKey {
		return nil, fmt.Errorf("%w: the request is for domain key %s, not this domain's %s", ErrRequest, FormatKey(n.DomainKey), FormatKey(Key(domain.Public().(ed25519.PublicKey))))
	}
	n.DomainSignature = record.KeySigner(domain).Sign(block.LabelRecord, n.SignedBytes())
	return record.Parse(n.Encode())
}
