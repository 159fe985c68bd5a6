package account

import (
	"bytes"
	"errors"
	"testing"
)

const testAccount = "alice@example.test"

var (
	testPassword = []byte("correct horse battery staple")
	testIdentity = []byte("flowmail-key v2\n...the identity key file bytes, secret...")
)

// secret runs the stretch (the OPRF under keys, then ksf) of password.
func secret(t *testing.T, p PAKE, keys *ServerKeys, password []byte, ksf KSFParams) ([]byte, error) {
	t.Helper()
	st, req, err := p.StartStretch(testAccount, password)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.StretchResponse(keys, testAccount, req)
	if err != nil {
		t.Fatal(err)
	}
	return st.Finish(resp, ksf)
}

// register runs a whole registration and returns what the server stores
// and the client's export key.
func register(t *testing.T, p PAKE, keys *ServerKeys, password []byte) (*Record, []byte) {
	t.Helper()
	return registerWith(t, p, keys, password, DefaultKSF)
}

func registerWith(t *testing.T, p PAKE, keys *ServerKeys, password []byte, ksf KSFParams) (*Record, []byte) {
	t.Helper()
	sec, err := secret(t, p, keys, password, ksf)
	if err != nil {
		t.Fatal(err)
	}
	reg, req, err := p.StartRegistration(testAccount, sec)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.RegistrationResponse(keys, testAccount, req)
	if err != nil {
		t.Fatal(err)
	}
	rec, export, err := reg.Finish(resp)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CheckRecord(rec); err != nil {
		t.Fatal(err)
	}
	sealed, err := Seal(export, testAccount, testIdentity)
	if err != nil {
		t.Fatal(err)
	}
	return &Record{KSF: ksf, OPAQUE: rec, Sealed: sealed}, export
}

// login runs a login against rec (nil: an unknown account) and returns
// the client's export key or its error, and the server's verdict on KE3.
func login(t *testing.T, p PAKE, keys *ServerKeys, rec *Record, password []byte) ([]byte, error, error) {
	t.Helper()
	ksf := DefaultKSF
	if rec != nil {
		ksf = rec.KSF
	}
	return loginWith(t, p, keys, rec, password, ksf)
}

// loginWith is login stretching with ksf, whatever rec says.
func loginWith(t *testing.T, p PAKE, keys *ServerKeys, rec *Record, password []byte, ksf KSFParams) ([]byte, error, error) {
	t.Helper()
	sec, err := secret(t, p, keys, password, ksf)
	if err != nil {
		return nil, err, nil
	}
	cl, ke1, err := p.StartLogin(testAccount, sec)
	if err != nil {
		t.Fatal(err)
	}
	var stored []byte
	if rec != nil {
		stored = rec.OPAQUE
	}
	ke2, sl, err := p.LoginResponse(keys, testAccount, stored, ke1)
	if err != nil {
		t.Fatal(err)
	}
	ke3, export, cerr := cl.Finish(ke2)
	if cerr != nil {
		return nil, cerr, nil
	}
	return export, nil, sl.Finish(ke3)
}

func newKeys(t *testing.T) *ServerKeys {
	t.Helper()
	k, err := GenerateServerKeys()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := ParseServerKeys(k.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	return k2
}

func TestLoginOpensTheSealedIdentity(t *testing.T) {
	p, keys := NewOPAQUE(), newKeys(t)
	rec, regExport := register(t, p, keys, testPassword)
	rec2, err := ParseRecord(rec.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	export, cerr, serr := login(t, p, keys, rec2, testPassword)
	if cerr != nil || serr != nil {
		t.Fatalf("login: client %v, server %v", cerr, serr)
	}
	if !bytes.Equal(export, regExport) {
		t.Fatal("login export key differs from the registration's")
	}
	got, err := Open(export, testAccount, rec2.Sealed)
	if err != nil || !bytes.Equal(got, testIdentity) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := Open(export, "mallory@example.test", rec2.Sealed); !errors.Is(err, ErrSealed) {
		t.Fatalf("Open under another account: %v, want ErrSealed", err)
	}
}

func TestWrongPasswordFailsOnBothSides(t *testing.T) {
	p, keys := NewOPAQUE(), newKeys(t)
	rec, _ := register(t, p, keys, testPassword)
	if _, cerr, _ := login(t, p, keys, rec, []byte("correct horse battery stapler")); !errors.Is(cerr, ErrAuthFailed) {
		t.Fatalf("wrong password: %v, want ErrAuthFailed", cerr)
	}
	// An account that does not exist answers like one with another password.
	if _, cerr, _ := login(t, p, keys, nil, testPassword); !errors.Is(cerr, ErrAuthFailed) {
		t.Fatalf("unknown account: %v, want ErrAuthFailed", cerr)
	}
	// A client that fakes KE3 without the password is refused by the server.
	cl, ke1, _ := p.StartLogin(testAccount, []byte("guess"))
	_ = cl
	_, sl, err := p.LoginResponse(keys, testAccount, rec.OPAQUE, ke1)
	if err != nil {
		t.Fatal(err)
	}
	if err := sl.Finish(bytes.Repeat([]byte{7}, KE3Size)); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("forged KE3: %v, want ErrAuthFailed", err)
	}
}

func TestReplayedAndOutOfOrderMessagesAreRefused(t *testing.T) {
	p, keys := NewOPAQUE(), newKeys(t)
	rec, _ := register(t, p, keys, testPassword)

	cl, ke1, _ := p.StartLogin(testAccount, testPassword)
	ke2, sl, err := p.LoginResponse(keys, testAccount, rec.OPAQUE, ke1)
	if err != nil {
		t.Fatal(err)
	}
	ke3, _, err := cl.Finish(ke2)
	if err == nil {
		t.Fatal("a login with the unstretched password succeeded")
	}
	sec, err := secret(t, p, keys, testPassword, DefaultKSF)
	if err != nil {
		t.Fatal(err)
	}
	cl, ke1, _ = p.StartLogin(testAccount, sec)
	ke2, sl, err = p.LoginResponse(keys, testAccount, rec.OPAQUE, ke1)
	if err != nil {
		t.Fatal(err)
	}
	ke3, _, err = cl.Finish(ke2)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := cl.Finish(ke2); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("client finishing twice: %v, want ErrOutOfOrder", err)
	}
	if err := sl.Finish(ke3); err != nil {
		t.Fatal(err)
	}
	if err := sl.Finish(ke3); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("replayed KE3 in its session: %v, want ErrOutOfOrder", err)
	}
	// The same KE3 replayed into a new session (same KE1 replayed too)
	// fails: the server's ephemeral key and nonce are fresh each time.
	_, sl2, err := p.LoginResponse(keys, testAccount, rec.OPAQUE, ke1)
	if err != nil {
		t.Fatal(err)
	}
	if err := sl2.Finish(ke3); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("KE3 replayed into another session: %v, want ErrAuthFailed", err)
	}

	reg, req, _ := p.StartRegistration(testAccount, testPassword)
	resp, err := p.RegistrationResponse(keys, testAccount, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.Finish(resp); err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.Finish(resp); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("registration finishing twice: %v, want ErrOutOfOrder", err)
	}
	st, sreq, _ := p.StartStretch(testAccount, testPassword)
	sresp, err := p.StretchResponse(keys, testAccount, sreq)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Finish(sresp, DefaultKSF); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Finish(sresp, DefaultKSF); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("stretch finishing twice: %v, want ErrOutOfOrder", err)
	}
}

func TestMalformedMessagesAreRefused(t *testing.T) {
	p, keys := NewOPAQUE(), newKeys(t)
	rec, _ := register(t, p, keys, testPassword)
	notAPoint := bytes.Repeat([]byte{0xff}, 32) // not a canonical ristretto255 encoding

	cases := []struct {
		name string
		run  func() error
	}{
		{"short registration request", func() error {
			_, err := p.RegistrationResponse(keys, testAccount, make([]byte, RegistrationRequestSize-1))
			return err
		}},
		{"registration request off the group", func() error {
			_, err := p.RegistrationResponse(keys, testAccount, notAPoint)
			return err
		}},
		{"long record", func() error { return p.CheckRecord(make([]byte, RecordSize+1)) }},
		{"record with a bad public key", func() error {
			r := append(append([]byte(nil), notAPoint...), rec.OPAQUE[32:]...)
			return p.CheckRecord(r)
		}},
		{"short KE1", func() error {
			_, _, err := p.LoginResponse(keys, testAccount, rec.OPAQUE, make([]byte, KE1Size-1))
			return err
		}},
		{"KE1 off the group", func() error {
			_, _, err := p.LoginResponse(keys, testAccount, rec.OPAQUE, bytes.Repeat([]byte{0xff}, KE1Size))
			return err
		}},
		{"short KE3", func() error {
			_, ke1, _ := p.StartLogin(testAccount, testPassword)
			_, sl, err := p.LoginResponse(keys, testAccount, rec.OPAQUE, ke1)
			if err != nil {
				return err
			}
			return sl.Finish(make([]byte, KE3Size-1))
		}},
		{"short KE2", func() error {
			cl, _, _ := p.StartLogin(testAccount, testPassword)
			_, _, err := cl.Finish(make([]byte, KE2Size-1))
			return err
		}},
		{"KE2 off the group", func() error {
			cl, _, _ := p.StartLogin(testAccount, testPassword)
			_, _, err := cl.Finish(bytes.Repeat([]byte{0xff}, KE2Size))
			return err
		}},
		{"short registration response", func() error {
			reg, _, _ := p.StartRegistration(testAccount, testPassword)
			_, _, err := reg.Finish(make([]byte, 3))
			return err
		}},
		{"short stretch request", func() error {
			_, err := p.StretchResponse(keys, testAccount, make([]byte, RegistrationRequestSize+1))
			return err
		}},
		{"stretch request off the group", func() error {
			_, err := p.StretchResponse(keys, testAccount, notAPoint)
			return err
		}},
		{"short stretch response", func() error {
			st, _, _ := p.StartStretch(testAccount, testPassword)
			_, err := st.Finish(make([]byte, StretchResponseSize-1), DefaultKSF)
			return err
		}},
		{"stretch response off the group", func() error {
			st, _, _ := p.StartStretch(testAccount, testPassword)
			_, err := st.Finish(bytes.Repeat([]byte{0xff}, StretchResponseSize), DefaultKSF)
			return err
		}},
		{"sealed identity too short", func() error {
			_, err := Open(make([]byte, ExportKeySize), testAccount, make([]byte, SealOverhead))
			return err
		}},
		{"account record truncated", func() error {
			b := rec.Marshal()
			_, err := ParseRecord(b[:len(b)-1])
			return err
		}},
		{"account record of another version", func() error {
			b := rec.Marshal()
			b[0] = 3
			_, err := ParseRecord(b)
			return err
		}},
		{"account record of version 1", func() error {
			b := rec.Marshal()
			b[0] = 1
			_, err := ParseRecord(b)
			return err
		}},
		{"account record with parameters below the minimum", func() error {
			r := *rec
			r.KSF.MemoryKiB--
			_, err := ParseRecord(r.Marshal())
			return err
		}},
		{"server keys short", func() error { _, err := ParseServerKeys(make([]byte, ServerKeysSize-1)); return err }},
		{"server keys with a zero secret", func() error { _, err := ParseServerKeys(make([]byte, ServerKeysSize)); return err }},
	}
	for _, c := range cases {
		if err := c.run(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", c.name, err)
		}
	}
}

// TestStoredDataAllowsNoOfflineGuess inspects everything a server keeps
// of an account: the password and the identity key are not in it, and
// without the OPRF seed it cannot check even the right password.
func TestStoredDataAllowsNoOfflineGuess(t *testing.T) {
	p, keys := NewOPAQUE(), newKeys(t)
	rec, export := register(t, p, keys, testPassword)
	stored := rec.Marshal()
	for _, secret := range [][]byte{testPassword, testIdentity, export, testIdentity[16:40]} {
		if bytes.Contains(stored, secret) {
			t.Fatalf("the stored record contains a secret (%d bytes)", len(secret))
		}
	}
	// Whoever holds the record but not the OPRF seed (a stolen disk
	// without the key file; a seed guessed) can run the client side with
	// every candidate password, but every answer is a failure, even for
	// the right one: the record checks no guess by itself.
	stolen := *keys
	stolen.OPRFSeed = [64]byte{1}
	if _, cerr, _ := login(t, p, &stolen, rec, testPassword); !errors.Is(cerr, ErrAuthFailed) {
		t.Fatalf("right password against the record without the OPRF seed: %v, want ErrAuthFailed", cerr)
	}
	// With the seed, the same run succeeds: the failure above is the seed's.
	if _, cerr, serr := login(t, p, keys, rec, testPassword); cerr != nil || serr != nil {
		t.Fatalf("with the seed: %v, %v", cerr, serr)
	}
}

// TestKSFBounds: parameters outside the bounds are refused before any
// work, whoever offers them (a hostile server asking for little or for
// more memory than the device gives).
func TestKSFBounds(t *testing.T) {
	ok := []KSFParams{DefaultKSF,
		{ID: KSFArgon2id, Time: MaxArgon2Time, MemoryKiB: MaxArgon2MemoryKiB, Lanes: MaxArgon2Lanes}}
	for _, k := range ok {
		if err := k.Check(); err != nil {
			t.Errorf("%v: %v", k, err)
		}
	}
	bad := []struct {
		k    KSFParams
		want error
	}{
		{KSFParams{ID: 2, Time: 3, MemoryKiB: 64 << 10, Lanes: 4}, ErrUnsupportedKSF},
		{KSFParams{ID: KSFArgon2id, Time: 2, MemoryKiB: 64 << 10, Lanes: 4}, ErrKSFBounds},
		{KSFParams{ID: KSFArgon2id, Time: 3, MemoryKiB: 64<<10 - 1, Lanes: 4}, ErrKSFBounds},
		{KSFParams{ID: KSFArgon2id, Time: 3, MemoryKiB: 64 << 10, Lanes: 1}, ErrKSFBounds},
		{KSFParams{ID: KSFArgon2id, Time: MaxArgon2Time + 1, MemoryKiB: 64 << 10, Lanes: 4}, ErrKSFBounds},
		{KSFParams{ID: KSFArgon2id, Time: 3, MemoryKiB: MaxArgon2MemoryKiB + 1, Lanes: 4}, ErrKSFBounds},
		{KSFParams{ID: KSFArgon2id, Time: 3, MemoryKiB: 1 << 31, Lanes: 4}, ErrKSFBounds},
		{KSFParams{ID: KSFArgon2id, Time: 3, MemoryKiB: 64 << 10, Lanes: MaxArgon2Lanes + 1}, ErrKSFBounds},
	}
	p, keys := NewOPAQUE(), newKeys(t)
	for _, c := range bad {
		if err := c.k.Check(); !errors.Is(err, c.want) {
			t.Errorf("%v: Check = %v, want %v", c.k, err, c.want)
		}
		// The client refuses them too, before stretching.
		if _, err := secret(t, p, keys, testPassword, c.k); !errors.Is(err, c.want) {
			t.Errorf("%v: stretch = %v, want %v", c.k, err, c.want)
		}
	}
	if b := AppendKSF(nil, DefaultKSF); len(b) != KSFSize {
		t.Fatalf("encoded KSF of %d bytes", len(b))
	} else if got, err := ParseKSF(b); err != nil || got != DefaultKSF {
		t.Fatalf("ParseKSF = %v, %v", got, err)
	}
}

// TestRaisedKSF: an account registered with raised parameters logs in
// with them, and the parameters are part of the secret: stretching with
// others (the default) fails like a wrong password.
func TestRaisedKSF(t *testing.T) {
	p, keys := NewOPAQUE(), newKeys(t)
	raised := KSFParams{ID: KSFArgon2id, Time: 4, MemoryKiB: 72 << 10, Lanes: 4}
	rec, regExport := registerWith(t, p, keys, testPassword, raised)
	rec2, err := ParseRecord(rec.Marshal())
	if err != nil || rec2.KSF != raised {
		t.Fatalf("stored parameters: %v, %v; want %v", rec2, err, raised)
	}
	export, cerr, serr := login(t, p, keys, rec2, testPassword)
	if cerr != nil || serr != nil || !bytes.Equal(export, regExport) {
		t.Fatalf("login with raised parameters: client %v, server %v", cerr, serr)
	}
	if _, cerr, _ := loginWith(t, p, keys, rec2, testPassword, DefaultKSF); !errors.Is(cerr, ErrAuthFailed) {
		t.Fatalf("login stretching with the default instead: %v, want ErrAuthFailed", cerr)
	}
}
