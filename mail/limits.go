package mail

import (
	"time"

	"github.com/flowmail/flowmail/block"
)

// Limits and constants of section 9 (docs/PROTOCOL.md, "Limits"), under
// the names the spec's table uses.
const (
	// RouteBits is the public part of an index block's proof of work
	// (spec 6): its ID shares min(D, RouteBits) leading bits with the
	// recipient's address for all to see; the rest of D is hidden behind
	// the work mask.
	RouteBits = 16

	// MaxRecipients bounds the recipients of one envelope.
	MaxRecipients = 64

	// MaxMessageSize bounds the RFC 5322 bytes of one mail.
	MaxMessageSize = 1 << 30

	// MaxHeaderSize bounds the header section of a message (spec 9.1): it
	// ends within the first MaxHeaderSize bytes, so the From check never
	// needs more of a streamed message than that.
	MaxHeaderSize = 128 << 10

	// HashChunk is the chunk the message hash cuts a message into
	// (spec 9.2), so that chunks are hashed side by side.
	HashChunk = 64 << 10

	// MaxWindow bounds the zstd window of a body (spec 9.3), and so what a
	// decoder holds.
	MaxWindow = 8 << 20

	// GroupDataShards is k of every group but the last, and the most any
	// group has (spec 9.3).
	GroupDataShards = 64

	// LastGroupMaxData bounds k of the last group where a smaller shard
	// size is chosen (spec 9.3 step 2): past it, halving the shard size
	// saves at most a tenth of the stored bytes but nearly doubles the
	// shards, and every shard costs its lookups, stores, fetch and
	// deletes whatever its size.
	LastGroupMaxData = 48

	// MaxShardSize is the payload of the data blocks of a full group: the
	// largest shard size, so that a data block with a deletion hash stays
	// under block.MaxBlockSize.
	MaxShardSize = 261120

	// fullGroupPlain is how many compressed bytes a full group carries.
	fullGroupPlain = GroupDataShards*MaxShardSize - tagSize

	// MaxCompressedLen bounds len(Z), the compressed envelope: a message
	// of MaxMessageSize that does not compress, the rest of the envelope,
	// and zstd's framing, with room to spare.
	MaxCompressedLen = MaxMessageSize + 1<<20

	// MaxGroups bounds the groups of one mail: what MaxCompressedLen
	// takes.
	MaxGroups = (MaxCompressedLen + fullGroupPlain - 1) / fullGroupPlain

	// MaxShards bounds the shard IDs of one manifest.
	MaxShards = MaxGroups * (GroupDataShards + (GroupDataShards+3)/4 + 7)

	// tagSize is the ChaCha20-Poly1305 tag that ends each group's
	// ciphertext.
	tagSize = 16

	// messageIDSize is the width of the envelope's random message_id.
	messageIDSize = 16

	// keySize is the width of content keys and deletion preimages.
	keySize = 32
)

// ShardSizes are the payload sizes of data blocks, smallest first (spec
// 9.3): powers of two from 1 KiB, and MaxShardSize.
var ShardSizes = [...]int{1 << 10, 2 << 10, 4 << 10, 8 << 10, 16 << 10, 32 << 10, 64 << 10, 128 << 10, MaxShardSize}

// ParityShards is m for a group of k data shards (spec 9.4): enough that
// every group survives the churn of the durability model (spec 9.7) with
// probability above 1 - 1e-11.
func ParityShards(k int) int { return (k+3)/4 + 7 }

// ReplayWindow is how far back a recipient accepts an envelope's signing
// time (spec 9.6): a block lives at most block.MaxLifetime, and clocks may
// be a day apart. The processed set keeps IDs for one more day than this,
// so a block re-stored after its entry was dropped is refused as stale.
const (
	clockSlack   = 24 * time.Hour
	ReplayWindow = block.MaxLifetime + clockSlack
)
