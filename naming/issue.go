package naming

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/record"
)

// DefaultValidity is how long `domain sign` makes a certificate last when
// not told: a year, renewed by re-signing (both keys), within
// record.MaxNameValidity.
const DefaultValidity = 365 * 24 * time.Hour

// backdate starts a certificate a little before now, so a verifier whose
// clock is behind the signer's does not see it as not yet valid.
const backdate = time.Hour

// NextVersion is the version a new certificate takes at a slot that holds
// held (nil when the slot is empty): the next sequence number, chained to
// held, valid from now (less an hour) for validity. A slot whose
// certificate was revoked is ended for good (docs/PROTOCOL.md 15.4): the
// error is record.ErrRevoked.
func NextVersion(held *record.Record, now time.Time, validity time.Duration) (record.Version, error) {
	if validity <= 0 || validity > record.MaxNameValidity-backdate {
		return record.Version{}, fmt.Errorf("%w: validity %v, want up to %v", record.ErrMalformed, validity, record.MaxNameValidity-backdate)
	}
	start := now.Add(-backdate).Unix()
	v := record.Version{Seq: 1, NotBefore: uint64(start), NotAfter: uint64(start + int64((validity+backdate)/time.Second))}
	if held == nil {
		return v, nil
	}
	if held.Kind != record.KindName {
		return record.Version{}, fmt.Errorf("%w: a %v is not a name certificate", record.ErrKind, held.Kind)
	}
	if held.Name.Version.Revoked {
		return record.Version{}, fmt.Errorf("%w: %s was revoked under this domain key; the name can be given out again only under a new domain key", record.ErrRevoked, held.Name.Name)
	}
	v.Seq, v.Prev = held.Name.Version.Seq+1, block.Sum(held.Bytes())
	return v, nil
}

// Revoke ends the binding held states, signed by the domain alone: the
// next version, revoked, keeping held's dates so it outlives held at every
// node (15.2). Nothing can follow it at that slot.
func Revoke(held *record.Record, domain ed25519.PrivateKey) (*record.Record, error) {
	if held.Kind != record.KindName {
		return nil, fmt.Errorf("%w: a %v is not a name certificate", record.ErrKind, held.Kind)
	}
	if held.Name.Version.Revoked {
		return held, nil
	}
	n := *held.Name
	n.Version = record.Version{Seq: n.Version.Seq + 1, Prev: block.Sum(held.Bytes()), Revoked: true, NotBefore: n.Version.NotBefore, NotAfter: n.Version.NotAfter}
	return record.SignName(n, record.KeySigner(domain), nil)
}
