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

	// fullGroupParity is m of a full group (spec 9.4).
	fullGroupParity = 18

	// MaxShards bounds the shard IDs of one manifest.
	MaxShards = MaxGroups * (GroupDataShards + fullGroupParity)

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

// ParityShards is m for a group of k data shards, 2 ≤ k ≤ GroupDataShards
// (spec 9.4): the fewest with which the group is lost with probability
// below 1e-10 under each of the durability model's two churns (spec
// 9.7), and below 1e-11 for a full group, since a mail has up to
// MaxGroups − 1 of those.
func ParityShards(k int) int { return int(parityShards[k]) }

// parityShards is spec 9.4's table, by k (TestParityMeetsTheDurabilityModel
// derives it from the model).
var parityShards = [GroupDataShards + 1]uint8{
	2: 7, 3: 7, 4: 7,
	5: 8, 6: 8, 7: 8,
	8: 9, 9: 9, 10: 9, 11: 9,
	12: 10, 13: 10, 14: 10, 15: 10, 16: 10,
	17: 11, 18: 11, 19: 11, 20: 11, 21: 11, 22: 11,
	23: 12, 24: 12, 25: 12, 26: 12, 27: 12, 28: 12,
	29: 13, 30: 13, 31: 13, 32: 13, 33: 13, 34: 13, 35: 13, 36: 13,
	37: 14, 38: 14, 39: 14, 40: 14, 41: 14, 42: 14, 43: 14,
	44: 15, 45: 15, 46: 15, 47: 15, 48: 15, 49: 15, 50: 15, 51: 15, 52: 15,
	53: 16, 54: 16, 55: 16, 56: 16, 57: 16, 58: 16, 59: 16, 60: 16, 61: 16,
	62: 17, 63: 17,
	64: fullGroupParity,
}

// ReplayWindow is how far back a recipient accepts an envelope's signing
// time (spec 9.6): a block lives at most block.MaxLifetime, and clocks may
// be a day apart. The processed set keeps IDs for one more day than this,
// so a block re-stored after its entry was dropped is refused as stale.
const (
	clockSlack   = 24 * time.Hour
	ReplayWindow = block.MaxLifetime + clockSlack
)
