package block

import "time"

// Limits of protocol version 1 (docs/PROTOCOL.md, "Limits"). The names are
// the ones the spec's table uses.
const (
	// Version is the only block format version this code speaks.
	Version = 1

	// MaxBlockSize bounds every block, header included.
	MaxBlockSize = 256 << 10

	// MaxLifetime caps the expiry a STORE may ask for, for every type.
	MaxLifetime = 30 * 24 * time.Hour

	// MaxDifficulty is the largest proof-of-work demand a pubkey block may
	// state: 2^32 trials is already minutes of grinding on a laptop.
	MaxDifficulty = 32

	// DefaultDifficulty is what `flowmail init` writes into a new pubkey
	// block: about 4 million trials, a second or two on two cores.
	DefaultDifficulty = 22

	// MinIndexSize is the smallest index block: header with deletion hash,
	// an HPKE encapsulation and tag, and the nonce.
	MinIndexSize = HeaderSizeWithDeletion + 1120 + 16 + NonceSize

	// NonceSize is the width of the proof-of-work nonce that ends an index
	// block.
	NonceSize = 8

	// ShardReplicas is R: how many of the nodes closest to a data block's
	// ID store it (spec 9.7). Index, pubkey and record blocks go to K.
	ShardReplicas = 3

	// ShardRepublishInterval is how often a holder republishes a data
	// block to the R closest nodes (spec 9.7): the round of the
	// durability model.
	ShardRepublishInterval = 24 * time.Hour
)

// Limits of records (block type 4, docs/PROTOCOL.md "Records").
const (
	// MaxRecordSize bounds every record, header included: small enough
	// that nodes verify a record on every STORE and keep one per slot.
	MaxRecordSize = 4096

	// MaxRotations is how many rotations one address's key log holds: 14
	// rotate events and one terminal (revoke or move) event fit in
	// MaxRecordSize after the inception pubkey block.
	MaxRotations = 14
)
