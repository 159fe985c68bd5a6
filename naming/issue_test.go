package naming

import (
	"errors"
	"testing"
	"time"

	"github.com/flowmail/flowmail/record"
)

// TestIssueRebindRevoke walks a name's slot through its versions as nodes
// see them: first issue, renewal, re-binding, revocation, and nothing
// after it.
func TestIssueRebindRevoke(t *testing.T) {
	src := testRand(t)
	w := newWorld(t, src)
	dk := newDomainKey(t, src)
	now := t0.Add(10 * 24 * time.Hour)
	sign := func(held *record.Record, who *person, at time.Time) *record.Record {
		t.Helper()
		v, err := NextVersion(held, at, DefaultValidity)
		if err != nil {
			t.Fatal(err)
		}
		r, err := record.SignName(record.NameCert{Name: "alice@example.test", Address: who.id.ID(), Version: v}, record.KeySigner(dk), who.id)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	first := sign(nil, w.alice, now)
	if first.Name.Version.Seq != 1 || int64(first.Name.Version.NotBefore) >= now.Unix() {
		t.Fatalf("first version %+v", first.Name.Version)
	}
	if v := first.Name.Version; v.NotAfter-v.NotBefore > uint64(record.MaxNameValidity/time.Second) {
		t.Fatal("longer than a name may last")
	}
	renewed := sign(first, w.alice, now.Add(300*24*time.Hour))
	rebound := sign(renewed, w.bob, now.Add(301*24*time.Hour))
	for _, step := range [][2]*record.Record{{first, renewed}, {renewed, rebound}} {
		if err := record.Supersedes(step[0], step[1]); err != nil {
			t.Fatalf("version %d after %d: %v", step[1].Name.Version.Seq, step[0].Name.Version.Seq, err)
		}
	}
	rev, err := Revoke(rebound, dk)
	if err != nil {
		t.Fatal(err)
	}
	if !rev.Name.Version.Revoked || rev.Name.Version.NotAfter != rebound.Name.Version.NotAfter || rev.Name.Address != w.bob.id.ID() {
		t.Fatalf("revocation %+v", rev.Name)
	}
	if err := record.Supersedes(rebound, rev); err != nil {
		t.Fatal(err)
	}
	if _, err := NextVersion(rev, now, DefaultValidity); !errors.Is(err, record.ErrRevoked) {
		t.Fatalf("a version after the revocation: %v", err)
	}
	if again, err := Revoke(rev, dk); err != nil || again != rev {
		t.Fatalf("revoking twice: %v", err)
	}
	if _, err := NextVersion(nil, now, record.MaxNameValidity); !errors.Is(err, record.ErrMalformed) {
		t.Fatalf("a validity the backdating pushes over the limit: %v", err)
	}
}
