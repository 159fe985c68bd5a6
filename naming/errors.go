package naming

import "errors"

// Errors. Each way a name fails to resolve has its own; vectors name them
// by the text after "naming: ". Certificate refusals (expired, revoked, a
// name not in normal form) wrap package record's errors.
var (
	ErrNoRecord   = errors.New("naming: no flowmail record")
	ErrConflict   = errors.New("naming: conflicting flowmail records")
	ErrMalformed  = errors.New("naming: malformed flowmail record")
	ErrVersion    = errors.New("naming: unknown flowmail record version")
	ErrNoResolver = errors.New("naming: no DNS server to ask")
	ErrTimeout    = errors.New("naming: no answer from the DNS server")
	ErrDNS        = errors.New("naming: DNS lookup failed")

	ErrNoCertificate = errors.New("naming: no name certificate")
	ErrKeyNotListed  = errors.New("naming: certificate signed by a key the domain does not list")
	ErrAmbiguous     = errors.New("naming: the domain binds the name to two addresses")
	ErrNoKeyLog      = errors.New("naming: the bound address cannot be resolved")

	ErrRebound          = errors.New("naming: name bound to another address")
	ErrDomainKeyChanged = errors.New("naming: the domain's key changed")
)

// ErrRequest: a name request file that is not one, or whose user
// signature does not verify.
var ErrRequest = errors.New("naming: invalid name request")

// ErrCarried: a certificate carried in a mail that is not one.
var ErrCarried = errors.New("naming: invalid carried certificate")
