package naming

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/record"
)

// world is a domain, its DNS, the DHT, and people to name.
type world struct {
	dht               *memDHT
	dns               *staticDNS
	res               *Resolver
	alice, bob, carol *person
}

func newWorld(t *testing.T, src io.Reader) *world {
	w := &world{dht: newMemDHT(), dns: &staticDNS{texts: map[string][]string{}}}
	w.res = &Resolver{DNS: w.dns, DHT: w.dht}
	w.alice, w.bob, w.carol = newPerson(t, src), newPerson(t, src), newPerson(t, src)
	for _, p := range []*person{w.alice, w.bob, w.carol} {
		w.dht.publish(p)
	}
	return w
}

func TestResolve(t *testing.T) {
	src := testRand(t)
	w := newWorld(t, src)
	dk, dk2 := newDomainKey(t, src), newDomainKey(t, src)
	w.dns.texts["example.test"] = []string{recordText(pub(dk))}
	w.dns.texts["xn--bcher-kva.example"] = []string{recordText(pub(dk))}
	w.dns.texts["roll.test"] = []string{recordText(pub(dk2), pub(dk))}
	w.dht.put(certify(t, "alice@example.test", dk, w.alice, record.Version{}))
	w.dht.put(certify(t, "bob@xn--bcher-kva.example", dk, w.bob, record.Version{}))
	w.dht.put(certify(t, "carol@roll.test", dk, w.carol, record.Version{})) // under the old key only
	now := t0.Add(time.Hour)
	ctx := context.Background()
	for name, who := range map[string]*person{
		"alice@example.test":        w.alice,
		"Alice@Example.TEST":        w.alice, // case folds
		"alice@example.test.":       w.alice,
		"bob@bücher.example":        w.bob, // IDNA: the A-label is looked up
		"BOB@BÜCHER.example":        w.bob,
		"bob@xn--bcher-kva.example": w.bob,
		"carol@roll.test":           w.carol, // a rollover: the second listed key
	} {
		b, err := w.res.Resolve(ctx, name, now, nil)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if b.Address() != who.id.ID() || b.State.Address != who.id.ID() || b.State.SignKey != [32]byte(who.id.VerifyKey()) {
			t.Errorf("%s: bound to %s", name, identity.FormatAddress(b.Address()))
		}
		if strings.ContainsAny(b.Name, "ABCDEFGHIJKLMNOPQRSTUVWXYZü") {
			t.Errorf("%s: name %q not normalised", name, b.Name)
		}
	}
	for name, want := range map[string]error{
		"ünï@example.test":   record.ErrName, // non-ASCII local part
		"alice example.test": record.ErrName,
		"alice@[192.0.2.1]":  record.ErrName,
		"dave@example.test":  ErrNoCertificate,
		"alice@nowhere.test": ErrNoRecord,
	} {
		if _, err := w.res.Resolve(ctx, name, now, nil); !errors.Is(err, want) {
			t.Errorf("%s: got %v, want %v", name, err, want)
		}
	}
}

// TestResolveAfterARotation: the certificate was co-signed by alice's
// first key; she rotated; the name still resolves, to her current key.
func TestResolveAfterARotation(t *testing.T) {
	src := testRand(t)
	w := newWorld(t, src)
	dk := newDomainKey(t, src)
	w.dns.texts["example.test"] = []string{recordText(pub(dk))}
	w.dht.put(certify(t, "alice@example.test", dk, w.alice, record.Version{}))
	w.alice.rotate(t, t0.Add(2*time.Hour), src)
	w.dht.publish(w.alice)
	b, err := w.res.Resolve(context.Background(), "alice@example.test", t0.Add(3*time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.State.Generation != 1 || b.State.SignKey != [32]byte(w.alice.id.VerifyKey()) {
		t.Fatalf("state at generation %d, not the rotated key", b.State.Generation)
	}
}

func TestResolveRefuses(t *testing.T) {
	src := testRand(t)
	dk, other := newDomainKey(t, src), newDomainKey(t, src)
	day := uint64(24 * 3600)
	nb := uint64(t0.Unix())
	now := t0.Add(48 * time.Hour)
	for name, tc := range map[string]struct {
		setup func(t *testing.T, w *world)
		seen  []Key
		want  error
	}{
		"expired": {func(t *testing.T, w *world) {
			w.dht.put(certify(t, "alice@example.test", dk, w.alice, record.Version{Seq: 1, NotBefore: nb, NotAfter: nb + day}))
		}, nil, record.ErrExpired},
		"not yet valid": {func(t *testing.T, w *world) {
			w.dht.put(certify(t, "alice@example.test", dk, w.alice, record.Version{Seq: 1, NotBefore: nb + 10*day, NotAfter: nb + 20*day}))
		}, nil, record.ErrNotYetValid},
		"revoked": {func(t *testing.T, w *world) {
			c1 := certify(t, "alice@example.test", dk, w.alice, record.Version{})
			w.dht.put(c1)
			w.dht.put(certify(t, "alice@example.test", dk, w.alice, record.Version{Seq: 2, Prev: block.Sum(c1.Bytes()), Revoked: true, NotBefore: nb, NotAfter: nb + 300*day}))
		}, nil, record.ErrRevoked},
		"signed by a key DNS no longer lists": {func(t *testing.T, w *world) {
			w.dht.put(certify(t, "alice@example.test", other, w.alice, record.Version{}))
		}, []Key{pub(other)}, ErrKeyNotListed},
		"under an unlisted key, never seen": {func(t *testing.T, w *world) {
			w.dht.put(certify(t, "alice@example.test", other, w.alice, record.Version{}))
		}, nil, ErrNoCertificate},
		"co-signed by a key the address never had": {func(t *testing.T, w *world) {
			r, err := record.SignName(record.NameCert{Name: "alice@example.test", Address: w.alice.id.ID(),
				Version: record.Version{Seq: 1, NotBefore: nb, NotAfter: nb + 300*day}}, record.KeySigner(dk), w.bob.id)
			if err != nil {
				t.Fatal(err)
			}
			w.dht.put(r)
		}, nil, record.ErrWrongKey},
		"bound address revoked": {func(t *testing.T, w *world) {
			w.dht.put(certify(t, "alice@example.test", dk, w.alice, record.Version{}))
			log, err := record.Revoke(w.alice.log, w.alice.id, t0.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			w.dht.put(log)
		}, nil, record.ErrRevoked},
		"bound address unknown": {func(t *testing.T, w *world) {
			stranger := newPerson(t, src) // never published
			w.dht.put(certify(t, "alice@example.test", dk, stranger, record.Version{}))
		}, nil, ErrNoKeyLog},
		"DHT fails": {func(t *testing.T, w *world) {
			w.dht.fail = errors.New("no route")
		}, nil, nil},
	} {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t, src)
			w.dns.texts["example.test"] = []string{recordText(pub(dk))}
			tc.setup(t, w)
			_, err := w.res.Resolve(context.Background(), "alice@example.test", now, tc.seen)
			if tc.want == nil {
				if err == nil || !strings.Contains(err.Error(), "no route") {
					t.Fatalf("got %v, want the DHT's error", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// TestResolveDuringARollover: certificates under both listed keys must
// agree; a revoked one under one key does not hide a good one under the
// other.
func TestResolveDuringARollover(t *testing.T) {
	src := testRand(t)
	oldK, newK := newDomainKey(t, src), newDomainKey(t, src)
	now := t0.Add(time.Hour)
	t.Run("agree", func(t *testing.T) {
		w := newWorld(t, src)
		w.dns.texts["example.test"] = []string{recordText(pub(newK), pub(oldK))}
		w.dht.put(certify(t, "alice@example.test", oldK, w.alice, record.Version{}))
		w.dht.put(certify(t, "alice@example.test", newK, w.alice, record.Version{}))
		if _, err := w.res.Resolve(context.Background(), "alice@example.test", now, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("disagree", func(t *testing.T) {
		w := newWorld(t, src)
		w.dns.texts["example.test"] = []string{recordText(pub(newK), pub(oldK))}
		w.dht.put(certify(t, "alice@example.test", oldK, w.alice, record.Version{}))
		w.dht.put(certify(t, "alice@example.test", newK, w.bob, record.Version{}))
		if _, err := w.res.Resolve(context.Background(), "alice@example.test", now, nil); !errors.Is(err, ErrAmbiguous) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("one expired, one revoked: the revocation is reported", func(t *testing.T) {
		w := newWorld(t, src)
		w.dns.texts["example.test"] = []string{recordText(pub(newK), pub(oldK))}
		nb := uint64(t0.Unix())
		w.dht.put(certify(t, "alice@example.test", newK, w.alice, record.Version{Seq: 1, NotBefore: nb, NotAfter: nb + 60}))
		c1 := certify(t, "alice@example.test", oldK, w.alice, record.Version{})
		w.dht.put(certify(t, "alice@example.test", oldK, w.alice, record.Version{Seq: 2, Prev: block.Sum(c1.Bytes()), Revoked: true, NotBefore: nb, NotAfter: nb + 86400}))
		if _, err := w.res.Resolve(context.Background(), "alice@example.test", now, nil); !errors.Is(err, record.ErrRevoked) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("old revoked, new good", func(t *testing.T) {
		w := newWorld(t, src)
		w.dns.texts["example.test"] = []string{recordText(pub(oldK), pub(newK))}
		c1 := certify(t, "alice@example.test", oldK, w.alice, record.Version{})
		w.dht.put(certify(t, "alice@example.test", oldK, w.alice, record.Version{Seq: 2, Prev: block.Sum(c1.Bytes()), Revoked: true,
			NotBefore: uint64(t0.Unix()), NotAfter: uint64(t0.Add(time.Hour * 24).Unix())}))
		w.dht.put(certify(t, "alice@example.test", newK, w.bob, record.Version{}))
		b, err := w.res.Resolve(context.Background(), "alice@example.test", now, nil)
		if err != nil {
			t.Fatal(err)
		}
		if b.Address() != w.bob.id.ID() {
			t.Fatal("bound to the revoked binding's address")
		}
	})
}

// TestVerifyCarriedCertificate: a certificate a sender carries is held
// against DNS like a fetched one.
func TestVerifyCarriedCertificate(t *testing.T) {
	src := testRand(t)
	w := newWorld(t, src)
	dk, forger := newDomainKey(t, src), newDomainKey(t, src)
	w.dns.texts["example.test"] = []string{recordText(pub(dk))}
	good := certify(t, "alice@example.test", dk, w.alice, record.Version{})
	b, err := w.res.Verify(context.Background(), good.Name, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if b.Address() != w.alice.id.ID() {
		t.Fatal("wrong address")
	}
	forged := certify(t, "alice@example.test", forger, w.bob, record.Version{})
	if _, err := w.res.Verify(context.Background(), forged.Name, t0.Add(time.Hour)); !errors.Is(err, ErrKeyNotListed) {
		t.Fatalf("forged: %v", err)
	}
}
