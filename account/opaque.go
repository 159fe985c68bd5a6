package account

import (
	"crypto/rand"
	"fmt"

	"github.com/bytemare/opaque"
	"github.com/bytemare/opaque/message"
)

// Sizes of the OPAQUE messages (RFC 9807 with ristretto255 and SHA-512),
// the sizes docs/PROTOCOL.md section 18 gives them.
const (
	RegistrationRequestSize  = 32
	RegistrationResponseSize = 64
	RecordSize               = 192 // client public key, masking key, envelope
	KE1Size                  = 96
	KE2Size                  = 320
	KE3Size                  = 64
	ExportKeySize            = 64
	ServerKeysSize           = 64 + 32 + 32 // OPRF seed, AKE secret and public keys
)

// opaqueContext binds every exchange to flowmail's use of OPAQUE.
const opaqueContext = "flowmail/v1 account"

// stretchIdentifier prefixes the account in the credential identifier
// of the stretch OPRF, so its key is not OPAQUE's (18.2).
const stretchIdentifier = "flowmail/v1 account stretch "

// StretchResponseSize is the stretch OPRF's answer: the evaluated
// element and the server's AKE public key, as OPAQUE's registration
// response.
const StretchResponseSize = RegistrationResponseSize

// ServerKeys are a server's long-term OPAQUE secrets: the OPRF seed
// (without which a stolen record allows no offline guess) and the AKE
// key pair.
type ServerKeys struct {
	OPRFSeed  [64]byte
	AKESecret [32]byte
	AKEPublic [32]byte
}

// GenerateServerKeys makes new server keys.
func GenerateServerKeys() (*ServerKeys, error) {
	conf := configuration()
	sk, pk := conf.KeyGen()
	k := &ServerKeys{}
	if len(sk) != len(k.AKESecret) || len(pk) != len(k.AKEPublic) {
		return nil, fmt.Errorf("account: unexpected AKE key sizes %d, %d", len(sk), len(pk))
	}
	copy(k.AKESecret[:], sk)
	copy(k.AKEPublic[:], pk)
	if _, err := rand.Read(k.OPRFSeed[:]); err != nil {
		return nil, err
	}
	return k, nil
}

// Marshal returns the keys as OPRF seed || AKE secret || AKE public.
func (k *ServerKeys) Marshal() []byte {
	b := make([]byte, 0, ServerKeysSize)
	b = append(b, k.OPRFSeed[:]...)
	b = append(b, k.AKESecret[:]...)
	return append(b, k.AKEPublic[:]...)
}

// ParseServerKeys is the inverse of Marshal; it checks the key pair.
func ParseServerKeys(b []byte) (*ServerKeys, error) {
	if err := checkLen("server keys", b, ServerKeysSize); err != nil {
		return nil, err
	}
	k := &ServerKeys{}
	copy(k.OPRFSeed[:], b[:64])
	copy(k.AKESecret[:], b[64:96])
	copy(k.AKEPublic[:], b[96:])
	s, err := configuration().Server()
	if err != nil {
		return nil, err
	}
	if err := s.SetKeyMaterial(nil, k.AKESecret[:], k.AKEPublic[:], k.OPRFSeed[:]); err != nil {
		return nil, fmt.Errorf("%w: server keys: %w", ErrMalformed, err)
	}
	return k, nil
}

// configuration is OPAQUE with the identity KSF: the library's Argon2id
// has fixed parameters, so the password is stretched before OPAQUE sees
// it, behind an OPRF of its own (StartStretch), with the account's.
func configuration() *opaque.Configuration {
	c := opaque.DefaultConfiguration() // ristretto255, SHA-512
	c.KSF = 0                          // identity
	c.Context = []byte(opaqueContext)
	return c
}

// NewOPAQUE returns the OPAQUE implementation of PAKE.
func NewOPAQUE() PAKE { return opaquePAKE{} }

type opaquePAKE struct{}

// guard turns a panic inside the library on hostile input into
// ErrMalformed: the library is not ours, and a malformed message must
// never take the server down.
func guard(what string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: %s: %v", ErrMalformed, what, r)
	}
}

func (opaquePAKE) StartStretch(account string, password []byte) (_ ClientStretch, _ []byte, err error) {
	c, err := configuration().Client()
	if err != nil {
		return nil, nil, err
	}
	req := c.RegistrationInit(password)
	return &opaqueStretch{c: c}, req.Serialize(), nil
}

type opaqueStretch struct {
	c    *opaque.Client
	done bool
}

func (st *opaqueStretch) Finish(resp []byte, ksf KSFParams) (_ []byte, err error) {
	if err := ksf.Check(); err != nil {
		return nil, err
	}
	if st.done {
		return nil, fmt.Errorf("%w: stretch already finished", ErrOutOfOrder)
	}
	if err := checkLen("stretch response", resp, StretchResponseSize); err != nil {
		return nil, err
	}
	defer guard("stretch response", &err)
	m, err := st.c.Deserialize.RegistrationResponse(resp)
	if err != nil {
		return nil, fmt.Errorf("%w: stretch response: %w", ErrMalformed, err)
	}
	st.done = true
	return stretch(ksf, st.c.OPRF.Finalize(m.EvaluatedMessage)), nil
}

func (p opaquePAKE) StretchResponse(keys *ServerKeys, account string, req []byte) ([]byte, error) {
	return p.RegistrationResponse(keys, stretchIdentifier+account, req)
}

func (opaquePAKE) StartRegistration(account string, secret []byte) (_ ClientRegistration, _ []byte, err error) {
	c, err := configuration().Client()
	if err != nil {
		return nil, nil, err
	}
	req := c.RegistrationInit(secret)
	return &opaqueRegistration{c: c, account: account}, req.Serialize(), nil
}

type opaqueRegistration struct {
	c       *opaque.Client
	account string
	done    bool
}

func (r *opaqueRegistration) Finish(resp []byte) (_, _ []byte, err error) {
	if r.done {
		return nil, nil, fmt.Errorf("%w: registration already finished", ErrOutOfOrder)
	}
	if err := checkLen("registration response", resp, RegistrationResponseSize); err != nil {
		return nil, nil, err
	}
	defer guard("registration response", &err)
	m, err := r.c.Deserialize.RegistrationResponse(resp)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: registration response: %w", ErrMalformed, err)
	}
	r.done = true
	rec, export := r.c.RegistrationFinalize(m, opaque.ClientRegistrationFinalizeOptions{ClientIdentity: []byte(r.account)})
	return rec.Serialize(), export, nil
}

func (opaquePAKE) RegistrationResponse(keys *ServerKeys, account string, req []byte) (_ []byte, err error) {
	if err := checkLen("registration request", req, RegistrationRequestSize); err != nil {
		return nil, err
	}
	defer guard("registration request", &err)
	s, err := configuration().Server()
	if err != nil {
		return nil, err
	}
	m, err := s.Deserialize.RegistrationRequest(req)
	if err != nil {
		return nil, fmt.Errorf("%w: registration request: %w", ErrMalformed, err)
	}
	pk, err := s.Deserialize.DecodeAkePublicKey(keys.AKEPublic[:])
	if err != nil {
		return nil, fmt.Errorf("%w: server public key: %w", ErrMalformed, err)
	}
	return s.RegistrationResponse(m, pk, []byte(account), keys.OPRFSeed[:]).Serialize(), nil
}

func (opaquePAKE) CheckRecord(record []byte) (err error) {
	_, err = parseRecord(record)
	return err
}

func parseRecord(record []byte) (_ *message.RegistrationRecord, err error) {
	if err := checkLen("registration record", record, RecordSize); err != nil {
		return nil, err
	}
	defer guard("registration record", &err)
	s, err := configuration().Server()
	if err != nil {
		return nil, err
	}
	m, err := s.Deserialize.RegistrationRecord(record)
	if err != nil {
		return nil, fmt.Errorf("%w: registration record: %w", ErrMalformed, err)
	}
	return m, nil
}

func (opaquePAKE) StartLogin(account string, secret []byte) (_ ClientLogin, _ []byte, err error) {
	c, err := configuration().Client()
	if err != nil {
		return nil, nil, err
	}
	ke1 := c.LoginInit(secret)
	return &opaqueLogin{c: c, account: account}, ke1.Serialize(), nil
}

type opaqueLogin struct {
	c       *opaque.Client
	account string
	done    bool
}

func (l *opaqueLogin) Finish(ke2 []byte) (_, _ []byte, err error) {
	if l.done {
		return nil, nil, fmt.Errorf("%w: login already finished", ErrOutOfOrder)
	}
	if err := checkLen("KE2", ke2, KE2Size); err != nil {
		return nil, nil, err
	}
	defer guard("KE2", &err)
	m, err := l.c.Deserialize.KE2(ke2)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: KE2: %w", ErrMalformed, err)
	}
	l.done = true
	ke3, export, err := l.c.LoginFinish(m, opaque.ClientLoginFinishOptions{ClientIdentity: []byte(l.account)})
	if err != nil {
		// The envelope does not open or the server's MAC is wrong: the
		// password is wrong, or this is not the server registered with.
		return nil, nil, fmt.Errorf("%w: %w", ErrAuthFailed, err)
	}
	return ke3.Serialize(), export, nil
}

func (opaquePAKE) LoginResponse(keys *ServerKeys, account string, record, ke1 []byte) (_ []byte, _ ServerLogin, err error) {
	if err := checkLen("KE1", ke1, KE1Size); err != nil {
		return nil, nil, err
	}
	defer guard("KE1", &err)
	conf := configuration()
	s, err := conf.Server()
	if err != nil {
		return nil, nil, err
	}
	if err := s.SetKeyMaterial(nil, keys.AKESecret[:], keys.AKEPublic[:], keys.OPRFSeed[:]); err != nil {
		return nil, nil, fmt.Errorf("account: server keys: %w", err)
	}
	m, err := s.Deserialize.KE1(ke1)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: KE1: %w", ErrMalformed, err)
	}
	var cr *opaque.ClientRecord
	if record == nil {
		if cr, err = conf.GetFakeRecord([]byte(account)); err != nil {
			return nil, nil, err
		}
	} else {
		rec, err := parseRecord(record)
		if err != nil {
			return nil, nil, err
		}
		cr = &opaque.ClientRecord{CredentialIdentifier: []byte(account), RegistrationRecord: rec}
	}
	cr.ClientIdentity = []byte(account)
	ke2, err := s.LoginInit(m, cr)
	if err != nil {
		return nil, nil, fmt.Errorf("account: login response: %w", err)
	}
	return ke2.Serialize(), &opaqueServerLogin{s: s}, nil
}

type opaqueServerLogin struct {
	s    *opaque.Server
	done bool
}

func (l *opaqueServerLogin) Finish(ke3 []byte) (err error) {
	if l.done {
		return fmt.Errorf("%w: login already finished", ErrOutOfOrder)
	}
	if err := checkLen("KE3", ke3, KE3Size); err != nil {
		return err
	}
	defer guard("KE3", &err)
	m, err := l.s.Deserialize.KE3(ke3)
	if err != nil {
		return fmt.Errorf("%w: KE3: %w", ErrMalformed, err)
	}
	l.done = true
	if err := l.s.LoginFinish(m); err != nil {
		return fmt.Errorf("%w: %w", ErrAuthFailed, err)
	}
	return nil
}
