package gateway

import "errors"

// Errors of the gateway, wrapped with detail. The SMTP server answers
// each with the reply docs/PROTOCOL.md 20.3 names.
var (
	// ErrMalformed: the message's header section does not parse, does
	// not end within MaxInboundHeader bytes, or lacks what is required.
	ErrMalformed = errors.New("gateway: malformed message")
	// ErrFrom: the From field is missing, repeated, or names other than
	// one mailbox.
	ErrFrom = errors.New("gateway: the From field must name exactly one mailbox")
	// ErrFlowmailSender: the message claims a flowmail sender (an
	// address of the gateway's domain or of flowmail.invalid); such mail
	// is sent over the network, never through SMTP.
	ErrFlowmailSender = errors.New("gateway: mail from a flowmail sender does not come in through SMTP")
	// ErrNotServed: the recipient is not a name of the gateway's domain.
	ErrNotServed = errors.New("gateway: not a recipient this gateway serves")
	// ErrUnknownUser: the name does not resolve to a flowmail address
	// that takes mail.
	ErrUnknownUser = errors.New("gateway: no such user")
	// ErrRateLimited: a sender or source is past its rate limit.
	ErrRateLimited = errors.New("gateway: rate limit reached")
	// ErrDMARCReject: the From domain's DMARC policy is reject and the
	// message has no aligned SPF or DKIM pass.
	ErrDMARCReject = errors.New("gateway: refused by the sender domain's DMARC policy")
	// ErrNoRelay: an outbound mail has no Flowmail-Relay-To recipient.
	ErrNoRelay = errors.New("gateway: no relay recipients")
	// ErrNotCertified: an outbound mail carries no name certificate of
	// the gateway's domain for its signer.
	ErrNotCertified = errors.New("gateway: the sender has no certified name of this domain")
	// ErrRecipient: a relay recipient is not a legacy address.
	ErrRecipient = errors.New("gateway: not a legacy address")
	// ErrNoBounce: a bounce was not sent (MaxBounceDifficulty).
	ErrNoBounce = errors.New("gateway: no bounce sent")
)
