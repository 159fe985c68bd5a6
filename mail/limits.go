package mail

import (
	"time"

	"github.com/flowmail/flowmail/block"
)

// Limits of section 9 (docs/PROTOCOL.md, "Limits"), under the names the
// spec's table uses.
const (
	// MaxRecipients bounds the recipients of one envelope.
	MaxRecipients = 64

	// MaxMessageSize bounds the RFC 5322 bytes of one mail.
	MaxMessageSize = 32 << 20

	// MaxDataShards bounds k, so that k + ceil(k/2) <= 256 and one GF(2^8)
	// Reed-Solomon code covers every mail.
	MaxDataShards = 170

	// MaxDecompressed is where a decoder of the compressed envelope stops
	// (spec 9.3 step 1): the largest envelope plus room to spare.
	MaxDecompressed = MaxMessageSize + 64<<10

	// tagSize is the ChaCha20-Poly1305 tag that ends the encrypted body.
	tagSize = 16

	// messageIDSize is the width of the envelope's random message_id.
	messageIDSize = 16

	// keySize is the width of content keys and deletion preimages.
	keySize = 32
)

// ShardSizes are the three payload sizes of data blocks, smallest first
// (spec 9.3 step 2). The largest is 255 KiB so that a data block with a
// deletion hash stays under block.MaxBlockSize.
var ShardSizes = [3]int{4096, 65536, 261120}

// ReplayWindow is how far back a recipient accepts an envelope's signing
// time (spec 9.6): a block lives at most block.MaxLifetime, and clocks may
// be a day apart. The processed set keeps IDs for one more day than this,
// so a block re-stored after its entry was dropped is refused as stale.
const (
	clockSlack   = 24 * time.Hour
	ReplayWindow = block.MaxLifetime + clockSlack
)
