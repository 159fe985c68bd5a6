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
	// ErrUnsupportedKSF: the account's key-stretching function is not
	// one this implementation knows.
	ErrUnsupportedKSF = errors.New("account: unsupported key-stretching function")
	// ErrKSFBounds: key-stretching parameters below the minimum (weaker
	// than flowmail allows) or above the maximum (more memory or time
	// than a device gives anyone), docs/PROTOCOL.md 18.2.
	ErrKSFBounds = errors.New("account: key-stretching parameters out of bounds")
	// ErrSealed: the sealed identity does not open under the export key
	// (another account's, or damaged).
	ErrSealed = errors.New("account: sealed identity does not open")
)
