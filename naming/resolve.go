package naming

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/record"
)

// DHT is what resolving a name needs from the network; kademlia's DHT
// has both (GetRecord, KeyState).
type DHT interface {
	// Record returns the newest valid record at slot among what the K
	// closest nodes answered (record.Newest); an error wrapping
	// record.ErrNotFound when none holds one.
	Record(ctx context.Context, slot block.ID) (*record.Record, error)
	// KeyState resolves an address's key state (docs/PROTOCOL.md 15.5):
	// its key log folded, or its inception block's state when it has
	// none.
	KeyState(ctx context.Context, address block.ID) (record.KeyState, error)
}

// DomainSource looks a domain's flowmail record up: *DNS in use, a fixed
// table in tests.
type DomainSource interface {
	LookupDomain(ctx context.Context, domain string) (*Domain, error)
}

// Resolver resolves names to addresses.
type Resolver struct {
	DNS DomainSource
	DHT DHT
}

// Binding is a name resolved: what DNS said, the certificate that binds
// the name, and the state of the bound address.
type Binding struct {
	Name   string // normalised
	Domain *Domain
	Cert   *record.NameCert
	State  record.KeyState // the bound address's key state now
}

// Address is the bound address.
func (b *Binding) Address() block.ID { return b.Cert.Address }

// Resolve resolves name (local@domain, normalised first) at now: the
// domain's record from DNS, for each key it lists the certificate at that
// key's slot, the key log of the address it binds, and the checks of
// docs/PROTOCOL.md 15.3. seen are domain keys the caller saw before (a
// pin's): when no listed key has a certificate but one of those does,
// the error is ErrKeyNotListed rather than ErrNoCertificate.
func (r *Resolver) Resolve(ctx context.Context, name string, now time.Time, seen []Key) (*Binding, error) {
	norm, err := record.Normalise(name)
	if err != nil {
		return nil, err
	}
	_, domain, _ := strings.Cut(norm, "@")
	d, err := r.DNS.LookupDomain(ctx, domain)
	if err != nil {
		return nil, err
	}
	var certs []*record.NameCert
	for _, k := range d.Keys {
		c, err := r.certificate(ctx, norm, k)
		if errors.Is(err, record.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		for _, k := range seen {
			if d.Lists(k) {
				continue
			}
			if c, err := r.certificate(ctx, norm, k); err == nil {
				return nil, fmt.Errorf("%w: %s is certified by %s, which %s no longer lists (it lists %s)", ErrKeyNotListed, norm, FormatKey(c.DomainKey), d.Name, keyList(d.Keys))
			}
		}
		return nil, fmt.Errorf("%w: no certificate for %s under the %d key(s) %s lists", ErrNoCertificate, norm, len(d.Keys), d.Name)
	}
	return r.bind(ctx, norm, d, certs, now)
}

// Verify checks a certificate someone carried (a sender's, in a mail)
// against DNS and the bound address's key log, as Resolve checks one it
// fetched: a certificate signed by a key the domain does not list is
// ErrKeyNotListed.
func (r *Resolver) Verify(ctx context.Context, c *record.NameCert, now time.Time) (*Binding, error) {
	_, domain, _ := strings.Cut(c.Name, "@")
	d, err := r.DNS.LookupDomain(ctx, domain)
	if err != nil {
		return nil, err
	}
	if !d.Lists(c.DomainKey) {
		return nil, fmt.Errorf("%w: %s is certified by %s; %s lists %s", ErrKeyNotListed, c.Name, FormatKey(c.DomainKey), d.Name, keyList(d.Keys))
	}
	return r.bind(ctx, c.Name, d, []*record.NameCert{c}, now)
}

// bind checks the certificates found under the domain's keys against
// their addresses' states. Every one that holds must bind the same
// address; when none holds, the error of the first says why.
func (r *Resolver) bind(ctx context.Context, name string, d *Domain, certs []*record.NameCert, now time.Time) (*Binding, error) {
	var good *Binding
	var firstErr, revoked error
	states := map[block.ID]record.KeyState{}
	for _, c := range certs {
		var err error
		if c.Version.Revoked {
			err = fmt.Errorf("%w: the domain revoked the binding", record.ErrRevoked)
		} else {
			st, ok := states[c.Address]
			if !ok {
				if st, err = r.DHT.KeyState(ctx, c.Address); err != nil {
					return nil, fmt.Errorf("%w: %s: %w", ErrNoKeyLog, identity.FormatAddress(c.Address), err)
				}
				states[c.Address] = st
			}
			if err == nil {
				err = c.Check(d.Keys, st, now)
			}
			if err == nil {
				if good != nil && good.Cert.Address != c.Address {
					return nil, fmt.Errorf("%w: %s to %s under key %s and to %s under key %s", ErrAmbiguous, name,
						identity.FormatAddress(good.Cert.Address), FormatKey(good.Cert.DomainKey), identity.FormatAddress(c.Address), FormatKey(c.DomainKey))
				}
				if good == nil {
					good = &Binding{Name: name, Domain: d, Cert: c, State: st}
				}
				continue
			}
		}
		err = fmt.Errorf("%s under key %s: %w", name, FormatKey(c.DomainKey), err)
		if firstErr == nil {
			firstErr = err
		}
		if revoked == nil && errors.Is(err, record.ErrRevoked) {
			revoked = err
		}
	}
	switch {
	case good != nil:
		return good, nil
	case revoked != nil:
		return nil, revoked // a domain that ended the binding says the most
	}
	return nil, firstErr
}

// certificate fetches the newest certificate for name under key.
func (r *Resolver) certificate(ctx context.Context, name string, key Key) (*record.NameCert, error) {
	slot := record.NameSlot(name, key)
	rec, err := r.DHT.Record(ctx, slot)
	if err != nil {
		return nil, fmt.Errorf("certificate of %s under key %s: %w", name, FormatKey(key), err)
	}
	if rec.Kind != record.KindName || rec.Slot() != slot {
		return nil, fmt.Errorf("certificate of %s: %w: the DHT answered a %v of another slot", name, record.ErrSlot, rec.Kind)
	}
	return rec.Name, nil
}

func keyList(keys []Key) string {
	s := make([]string, len(keys))
	for i, k := range keys {
		s[i] = FormatKey(k)
	}
	return strings.Join(s, ", ")
}
