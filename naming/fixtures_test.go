package naming

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/testseed"
	"github.com/flowmail/flowmail/record"
)

var t0 = time.Unix(1967225600, 0) // 2026-01-01T00:00:00Z

// person is an identity with its key log, as its owner keeps them.
type person struct {
	id   *identity.Identity
	next *identity.NextKey
	log  *record.Record
}

func newPerson(t testing.TB, random io.Reader) *person {
	t.Helper()
	id, next, err := identity.New(8, t0, random)
	if err != nil {
		t.Fatal(err)
	}
	log, err := record.NewKeyLog(id.Public().Block)
	if err != nil {
		t.Fatal(err)
	}
	return &person{id: id, next: next, log: log}
}

func (p *person) rotate(t testing.TB, at time.Time, random io.Reader) {
	t.Helper()
	r, err := record.Rotate(p.log, p.id, p.next, 8, at, random)
	if err != nil {
		t.Fatal(err)
	}
	p.id, p.next, p.log = r.Identity, r.Next, r.Log
}

func (p *person) state(t testing.TB) record.KeyState {
	t.Helper()
	s, err := p.log.KeyLog.State()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newDomainKey(t testing.TB, random io.Reader) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(random)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pub(k ed25519.PrivateKey) Key { return Key(k.Public().(ed25519.PublicKey)) }

// certify signs a certificate for name (normalised) binding who's
// address, co-signed by who's current key, valid from t0 for days.
func certify(t testing.TB, name string, domain ed25519.PrivateKey, who *person, v record.Version) *record.Record {
	t.Helper()
	if v.Seq == 0 {
		v = record.Version{Seq: 1, NotBefore: uint64(t0.Unix()), NotAfter: uint64(t0.Add(365 * 24 * time.Hour).Unix())}
	}
	var user record.Signer = who.id
	if v.Revoked {
		user = nil
	}
	r, err := record.SignName(record.NameCert{Name: name, Address: who.id.ID(), Version: v}, record.KeySigner(domain), user)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// memDHT is the DHT as the resolver sees it: what the closest nodes
// answer for a slot, and blocks by ID. Tests put what nodes would hold.
type memDHT struct {
	mu      sync.Mutex
	records map[block.ID][][]byte
	blocks  map[block.ID][]byte
	fail    error
}

func newMemDHT() *memDHT {
	return &memDHT{records: map[block.ID][][]byte{}, blocks: map[block.ID][]byte{}}
}

// put adds a record as one more node's answer at its slot.
func (d *memDHT) put(r *record.Record) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.records[r.Slot()] = append(d.records[r.Slot()], r.Bytes())
}

// publish stores a person's inception block and key log.
func (d *memDHT) publish(p *person) {
	d.mu.Lock()
	d.blocks[p.id.ID()] = p.log.KeyLog.Inception
	d.mu.Unlock()
	if len(p.log.KeyLog.Events) > 0 {
		d.put(p.log)
	}
}

func (d *memDHT) Record(ctx context.Context, slot block.ID) (*record.Record, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail != nil {
		return nil, d.fail
	}
	return record.Newest(slot, d.records[slot])
}

// KeyState is kademlia's rule: the key log folded, or the inception
// block's state.
func (d *memDHT) KeyState(ctx context.Context, addr block.ID) (record.KeyState, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail != nil {
		return record.KeyState{}, d.fail
	}
	st, err := record.ResolveKeyLog(addr, d.records[record.KeyLogSlot(addr)])
	if !errors.Is(err, record.ErrNotFound) {
		return st, err
	}
	b, ok := d.blocks[addr]
	if !ok {
		return record.KeyState{}, fmt.Errorf("%w: no key log and no pubkey block of %v", record.ErrNotFound, addr.Short())
	}
	p, err := identity.ParsePubkey(b)
	if err != nil {
		return record.KeyState{}, err
	}
	return record.InitialState(p), nil
}

// staticDNS answers LookupDomain from a table of record texts per domain
// (A-label form), as DNS would after SelectRecord.
type staticDNS struct {
	texts     map[string][]string
	validated bool
	asked     []string
}

func (s *staticDNS) LookupDomain(ctx context.Context, domain string) (*Domain, error) {
	name, err := NormaliseDomain(domain)
	if err != nil {
		return nil, err
	}
	s.asked = append(s.asked, name)
	texts, ok := s.texts[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNoRecord, name)
	}
	r, err := SelectRecord(texts)
	if err != nil {
		return nil, err
	}
	return &Domain{Name: name, Record: *r, Validated: s.validated, AnsweredBy: "static"}, nil
}

func recordText(keys ...Key) string {
	r := Record{Keys: keys}
	return r.Text()
}

func testRand(t testing.TB) io.Reader { return testseed.ChaCha8(t) }
