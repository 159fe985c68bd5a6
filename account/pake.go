package account

import (
	"fmt"
)

// PAKE is the password-authenticated key exchange accounts run. OPAQUE
// (NewOPAQUE) is the one implementation; callers see only byte messages
// of fixed sizes, so another could replace it behind a new spec version.
//
// Every method that takes bytes from outside checks their length and
// encoding first and returns ErrMalformed wrapped with detail.
type PAKE interface {
	// StartRegistration blinds password for account; the returned
	// message goes to the server.
	StartRegistration(account string, password []byte) (ClientRegistration, []byte, error)
	// RegistrationResponse answers a registration request.
	RegistrationResponse(keys *ServerKeys, account string, req []byte) ([]byte, error)
	// CheckRecord checks a registration record a client uploads.
	CheckRecord(record []byte) error
	// StartLogin starts a login; the returned message (KE1) goes to the
	// server.
	StartLogin(account string, password []byte) (ClientLogin, []byte, error)
	// LoginResponse answers KE1 with KE2. A nil record answers as for an
	// account that exists, so a client learns nothing of which do.
	LoginResponse(keys *ServerKeys, account string, record, ke1 []byte) ([]byte, ServerLogin, error)
}

// ClientRegistration is a registration waiting for the server's answer.
type ClientRegistration interface {
	// Finish returns the record to upload and the export key, stretching
	// the password with ksf (the server says which; ErrUnsupportedKSF
	// when this implementation cannot run them). It may be called once.
	Finish(resp []byte, ksf KSFParams) (record, exportKey []byte, err error)
}

// ClientLogin is a login waiting for KE2.
type ClientLogin interface {
	// Finish returns KE3 and the export key, or ErrAuthFailed for a
	// wrong password; ksf as in ClientRegistration.Finish. It may be
	// called once.
	Finish(ke2 []byte, ksf KSFParams) (ke3, exportKey []byte, err error)
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
