package account

import (
	"fmt"
)

// PAKE is the password-authenticated key exchange accounts run. OPAQUE
// (NewOPAQUE) is the one implementation; callers see only byte messages
// of fixed sizes, so another could replace it behind a new spec version.
//
// A password is first stretched (StartStretch): an OPRF under a key of
// the server's, then Argon2id with the account's parameters. What comes
// out, the secret, is what registration and login run on. Whoever steals
// the server's records and keys still pays one Argon2id per guess, and
// nobody can stretch guesses ahead of time without the server.
//
// Every method that takes bytes from outside checks their length and
// encoding first and returns ErrMalformed wrapped with detail.
type PAKE interface {
	// StartStretch blinds password for account's stretch OPRF; the
	// returned message goes to the server.
	StartStretch(account string, password []byte) (ClientStretch, []byte, error)
	// StretchResponse evaluates the stretch OPRF.
	StretchResponse(keys *ServerKeys, account string, req []byte) ([]byte, error)
	// StartRegistration blinds secret (ClientStretch.Finish's) for
	// account; the returned message goes to the server.
	StartRegistration(account string, secret []byte) (ClientRegistration, []byte, error)
	// RegistrationResponse answers a registration request.
	RegistrationResponse(keys *ServerKeys, account string, req []byte) ([]byte, error)
	// CheckRecord checks a registration record a client uploads.
	CheckRecord(record []byte) error
	// StartLogin starts a login with secret (ClientStretch.Finish's);
	// the returned message (KE1) goes to the server.
	StartLogin(account string, secret []byte) (ClientLogin, []byte, error)
	// LoginResponse answers KE1 with KE2. A nil record answers as for an
	// account that exists, so a client learns nothing of which do.
	LoginResponse(keys *ServerKeys, account string, record, ke1 []byte) ([]byte, ServerLogin, error)
}

// ClientStretch is a stretch waiting for the server's answer.
type ClientStretch interface {
	// Finish returns the secret: the OPRF's output stretched with ksf.
	// It checks ksf first (ErrUnsupportedKSF, ErrKSFBounds), so a
	// server cannot make it run weaker or unbounded parameters. It may
	// be called once.
	Finish(resp []byte, ksf KSFParams) (secret []byte, err error)
}

// ClientRegistration is a registration waiting for the server's answer.
type ClientRegistration interface {
	// Finish returns the record to upload and the export key. It may be
	// called once.
	Finish(resp []byte) (record, exportKey []byte, err error)
}

// ClientLogin is a login waiting for KE2.
type ClientLogin interface {
	// Finish returns KE3 and the export key, or ErrAuthFailed for a
	// wrong password. It may be called once.
	Finish(ke2 []byte) (ke3, exportKey []byte, err error)
}

// ServerLogin is the server's state of one login, between KE2 and KE3.
type ServerLogin interface {
	// Finish checks KE3: nil when the client knew the password. It may
	// be called once; a second call is ErrOutOfOrder.
	Finish(ke3 []byte) error
}

// checkLen is the length check every parser does before decoding.
func checkLen(what string, b []byte, n int) error {
	if len(b) != n {
		return fmt.Errorf("%w: %s of %d bytes, want %d", ErrMalformed, what, len(b), n)
	}
	return nil
}
