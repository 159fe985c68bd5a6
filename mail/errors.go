package mail

import "errors"

// Errors of the envelope and manifest decoders and of the checks a
// recipient makes (spec 9.2 to 9.6), wrapped with detail. Test vectors
// name them by the text after "mail: ".
var (
	// Layout of the envelope and the manifest.
	ErrTruncated          = errors.New("mail: truncated")
	ErrTrailing           = errors.New("mail: trailing bytes")
	ErrVersion            = errors.New("mail: unsupported version")
	ErrRecipientCount     = errors.New("mail: recipient count out of range")
	ErrDuplicateRecipient = errors.New("mail: duplicate recipient")
	ErrMessageSize        = errors.New("mail: message size out of range")
	ErrFlags              = errors.New("mail: invalid flags")
	ErrShardSize          = errors.New("mail: invalid shard size")
	ErrShardCount         = errors.New("mail: invalid shard counts")
	ErrGroupCount         = errors.New("mail: group count out of range")
	ErrCompressedLen      = errors.New("mail: compressed length out of range")
	ErrLayout             = errors.New("mail: shard layout does not match compressed length")
	ErrPadding            = errors.New("mail: padding not zero")

	// Authenticity of the envelope (spec 9.2).
	ErrSender       = errors.New("mail: sender pubkey block does not verify")
	ErrFromAddress  = errors.New("mail: envelope from address is zero")
	ErrSignature    = errors.New("mail: envelope signature does not verify")
	ErrNotRecipient = errors.New("mail: not addressed to this recipient")
	ErrFromHeader   = errors.New("mail: no usable From header")
	ErrHeaderSize   = errors.New("mail: header section too long")
	ErrFromMismatch = errors.New("mail: From header does not name the signer")
	ErrStale        = errors.New("mail: signed too long ago")

	// The body (spec 9.3, 9.4) and the proof of work (spec 6).
	ErrDecompress    = errors.New("mail: body does not decompress")
	ErrDecrypt       = errors.New("mail: body does not decrypt")
	ErrShardsMissing = errors.New("mail: too few shards")
	ErrProofOfWork   = errors.New("mail: index block lacks the proof of work")
	ErrIndexBlock    = errors.New("mail: invalid index block")

	// Grant claims (spec 17).
	ErrNotRoutable = errors.New("mail: index block outside the recipient's routing prefix")
	ErrGrantMAC    = errors.New("mail: grant_mac without a grant_id")
	ErrClaim       = errors.New("mail: grant claim does not verify")
)
