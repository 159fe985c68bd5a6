package mailbuilder

import (
	"errors"
	"fmt"

	"github.com/flowmail/flowmail/block"
)

// Errors of the envelope and manifest decoders and of the checks a
// recipient makes (spec 9.2 to 9.6), wrapped with detail. Test vectors
// name them by the text after "mailbuilder: ".
var (
	// Layout of the envelope and the manifest.
	ErrTruncated          = errors.New("mailbuilder: truncated")
	ErrTrailing           = errors.New("mailbuilder: trailing bytes")
	ErrVersion            = errors.New("mailbuilder: unsupported version")
	ErrRecipientCount     = errors.New("mailbuilder: recipient count out of range")
	ErrDuplicateRecipient = errors.New("mailbuilder: duplicate recipient")
	ErrMessageSize        = errors.New("mailbuilder: message size out of range")
	ErrFlags              = errors.New("mailbuilder: invalid flags")
	ErrShardSize          = errors.New("mailbuilder: invalid shard size")
	ErrShardCount         = errors.New("mailbuilder: invalid shard counts")
	ErrCompressedLen      = errors.New("mailbuilder: compressed length out of range")
	ErrLayout             = errors.New("mailbuilder: shard layout does not match compressed length")
	ErrPadding            = errors.New("mailbuilder: padding not zero")

	// Authenticity of the envelope (spec 9.2).
	ErrSender       = errors.New("mailbuilder: sender pubkey block does not verify")
	ErrSignature    = errors.New("mailbuilder: envelope signature does not verify")
	ErrNotRecipient = errors.New("mailbuilder: not addressed to this recipient")
	ErrFromHeader   = errors.New("mailbuilder: no usable From header")
	ErrFromMismatch = errors.New("mailbuilder: From header does not name the signer")
	ErrStale        = errors.New("mailbuilder: signed too long ago")
	ErrDuplicate    = errors.New("mailbuilder: delivered already")

	// The body (spec 9.3, 9.4) and the proof of work (spec 6).
	ErrTooLarge      = errors.New("mailbuilder: mail too large")
	ErrDecompress    = errors.New("mailbuilder: body does not decompress")
	ErrDecrypt       = errors.New("mailbuilder: body does not decrypt")
	ErrShardsMissing = errors.New("mailbuilder: too few shards")
	ErrProofOfWork   = errors.New("mailbuilder: index block lacks the proof of work")
	ErrIndexBlock    = errors.New("mailbuilder: invalid index block")
)

// MailError is the outcome of one mail that could not be delivered. Fetch
// reports it and goes on with the other mails.
type MailError struct {
	Index block.ID // the index block's ID
	Err   error
}

func (e *MailError) Error() string { return fmt.Sprintf("mail %s: %v", e.Index.Short(), e.Err) }
func (e *MailError) Unwrap() error { return e.Err }
