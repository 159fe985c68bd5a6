package account

import (
	"testing"

	"golang.org/x/crypto/argon2"
)

// BenchmarkArgon2id is the baseline: one Argon2id at DefaultKSF, what a
// login costs the client at the least.
func BenchmarkArgon2id(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		argon2.IDKey(testPassword, nil, DefaultKSF.Time, DefaultKSF.MemoryKiB, DefaultKSF.Lanes, 32)
	}
}

// BenchmarkLogin is a whole login, both sides in one process: KE1, KE2,
// KE3, the server's check and opening the sealed identity.
func BenchmarkLogin(b *testing.B) {
	p := NewOPAQUE()
	keys, err := GenerateServerKeys()
	if err != nil {
		b.Fatal(err)
	}
	rec, export := benchRegister(b, p, keys)
	sealed, _ := Seal(export, testAccount, testIdentity)
	b.ReportAllocs()
	for b.Loop() {
		sec := benchSecret(b, p, keys)
		cl, ke1, _ := p.StartLogin(testAccount, sec)
		ke2, sl, err := p.LoginResponse(keys, testAccount, rec, ke1)
		if err != nil {
			b.Fatal(err)
		}
		ke3, ex, err := cl.Finish(ke2)
		if err != nil {
			b.Fatal(err)
		}
		if err := sl.Finish(ke3); err != nil {
			b.Fatal(err)
		}
		if _, err := Open(ex, testAccount, sealed); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServerLogin is the server's share of a login (KE2 and the KE3
// check): what the rate limits protect, and what it costs per attempt.
func BenchmarkServerLogin(b *testing.B) {
	p := NewOPAQUE()
	keys, _ := GenerateServerKeys()
	rec, _ := benchRegister(b, p, keys)
	_, ke1, _ := p.StartLogin(testAccount, benchSecret(b, p, keys))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := p.LoginResponse(keys, testAccount, rec, ke1); err != nil {
			b.Fatal(err)
		}
	}
}

func benchSecret(b *testing.B, p PAKE, keys *ServerKeys) []byte {
	st, req, _ := p.StartStretch(testAccount, testPassword)
	resp, err := p.StretchResponse(keys, testAccount, req)
	if err != nil {
		b.Fatal(err)
	}
	sec, err := st.Finish(resp, DefaultKSF)
	if err != nil {
		b.Fatal(err)
	}
	return sec
}

func benchRegister(b *testing.B, p PAKE, keys *ServerKeys) (record, export []byte) {
	reg, req, _ := p.StartRegistration(testAccount, benchSecret(b, p, keys))
	resp, err := p.RegistrationResponse(keys, testAccount, req)
	if err != nil {
		b.Fatal(err)
	}
	rec, export, err := reg.Finish(resp)
	if err != nil {
		b.Fatal(err)
	}
	return rec, export
}
