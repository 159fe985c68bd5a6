package naming

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/flowmail/flowmail/record"
)

func validity() record.Version {
	return record.Version{Seq: 1, NotBefore: uint64(t0.Unix()), NotAfter: uint64(t0.Add(90 * 24 * time.Hour).Unix())}
}

// TestRequestCompletes: the user co-signs, the domain completes; the
// certificate verifies and resolves to the user.
func TestRequestCompletes(t *testing.T) {
	src := testRand(t)
	w := newWorld(t, src)
	dk := newDomainKey(t, src)
	req, err := NewRequest("Alice@Example.TEST", w.alice.id.ID(), pub(dk), w.alice.id, validity())
	if err != nil {
		t.Fatal(err)
	}
	file := req.Encode()
	got, err := DecodeRequest(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Encode(), file) {
		t.Fatal("request does not re-encode to its bytes")
	}
	cert, err := got.Complete(dk)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Name.Name != "alice@example.test" || cert.Name.Address != w.alice.id.ID() {
		t.Fatalf("certificate %+v", cert.Name)
	}
	w.dns.texts["example.test"] = []string{recordText(pub(dk))}
	w.dht.put(cert)
	b, err := w.res.Resolve(t.Context(), "alice@example.test", t0.Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.Address() != w.alice.id.ID() {
		t.Fatal("resolved elsewhere")
	}
}

func TestRequestRefuses(t *testing.T) {
	src := testRand(t)
	w := newWorld(t, src)
	dk, other := newDomainKey(t, src), newDomainKey(t, src)
	req, err := NewRequest("alice@example.test", w.alice.id.ID(), pub(dk), w.alice.id, validity())
	if err != nil {
		t.Fatal(err)
	}
	good := req.Encode()
	flip := func(i int) []byte { b := bytes.Clone(good); b[i] ^= 1; return b }
	for name, b := range map[string][]byte{
		"empty":           nil,
		"magic":           flip(0),
		"name length":     flip(len(requestMagic)),
		"address":         flip(len(requestMagic) + 1 + 18 + 3),
		"user signature":  flip(len(good) - 1),
		"truncated":       good[:len(good)-1],
		"trailing byte":   append(bytes.Clone(good), 0),
		"over the limit":  append(bytes.Clone(good), make([]byte, MaxRequestSize)...),
		"signature moved": append(append(bytes.Clone(good[:len(good)-64-8]), good[len(good)-64:]...), good[len(good)-72:len(good)-64]...),
	} {
		if _, err := DecodeRequest(b); !errors.Is(err, ErrRequest) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := req.Complete(other); !errors.Is(err, ErrRequest) {
		t.Errorf("completed with another domain's key: %v", err)
	}
	// The dates are the certificate's rules: checked when completed.
	long := validity()
	long.NotAfter = long.NotBefore + uint64(2*record.MaxNameValidity/time.Second)
	r2, err := NewRequest("alice@example.test", w.alice.id.ID(), pub(dk), w.alice.id, long)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Complete(dk); !errors.Is(err, record.ErrMalformed) {
		t.Errorf("two years of validity: %v", err)
	}
	if _, err := NewRequest("älice@example.test", w.alice.id.ID(), pub(dk), w.alice.id, validity()); !errors.Is(err, record.ErrName) {
		t.Errorf("Unicode local part: %v", err)
	}
	rev := validity()
	rev.Revoked = true
	if _, err := NewRequest("alice@example.test", w.alice.id.ID(), pub(dk), w.alice.id, rev); !errors.Is(err, ErrRequest) {
		t.Errorf("a revoking request: %v", err)
	}
}

func FuzzDecodeRequest(f *testing.F) {
	src := testRand(f)
	dk := newDomainKey(f, src)
	p := newPerson(f, src)
	req, err := NewRequest("alice@example.test", p.id.ID(), pub(dk), p.id, validity())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(req.Encode())
	f.Add([]byte(requestMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRequest(b)
		if err != nil {
			return
		}
		if !bytes.Equal(r.Encode(), b) {
			t.Fatal("accepted request does not re-encode to its bytes")
		}
	})
}

// TestRequestSize pins the sizes docs/PROTOCOL.md 19.6 states.
func TestRequestSize(t *testing.T) {
	if requestFixed != 238 || MaxRequestSize != 492 {
		t.Fatalf("request of %d + name bytes, at most %d; the spec says 238 and 492", requestFixed, MaxRequestSize)
	}
}
