package account

import "errors"

// Errors of the package, wrapped with detail.
var (
	// ErrMalformed: a message or record has the wrong length or does not
	// decode (a point off the group, a bad version byte).
	ErrMalformed = errors.New("account: malformed message")
	// ErrAuthFailed: the exchange did not authenticate. On the client it
	// means a wrong password (or a server that is not the one registered
	// with); on the server, a client that did not know the password.
	ErrAuthFailed = errors.New("account: authentication failed")
	// ErrOutOfOrder: a step was taken twice or before the one it follows
	// (a replayed finish, a finish with no start).
	ErrOutOfOrder = errors.New("account: message out of order")
	// ErrUnsupportedKSF: the account's key-stretching parameters are not
	// ones this implementation can run.
	ErrUnsupportedKSF = errors.New("account: unsupported key-stretching parameters")
	// ErrSealed: the sealed identity does not open under the export key
	// (another account's, or damaged).
	ErrSealed = errors.New("account: sealed identity does not open")
)
