package delivery

import (
	"context"
	"fmt"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

// Network is all delivery needs of the DHT. Implementations bound every
// call in size and time and are safe for concurrent use.
type Network interface {
	// Put stores a block at the nodes closest to its ID for lifetime.
	Put(ctx context.Context, blk []byte, lifetime time.Duration) error
	// Get returns the block named id. Callers check the hash again.
	Get(ctx context.Context, id block.ID) ([]byte, error)
	// List returns the IDs of index blocks sharing at least bits leading
	// bits with target and stored at or after since, at the nodes closest
	// to target, every page of them.
	List(ctx context.Context, target block.ID, bits int, since time.Time) ([]block.ID, error)
	// Delete asks the holders of id to drop it, proving the right with the
	// preimage of its deletion hash.
	Delete(ctx context.Context, id block.ID, preimage [32]byte) error
}

// DataDeleter is a Network that can delete a block it is told is a data
// block (a mail's shard) at its few holders instead of wherever a block
// of any type may be held. deleteMail uses it when the Network has it.
type DataDeleter interface {
	DeleteData(ctx context.Context, id block.ID, preimage [32]byte) error
}

// KnownPutter is a Network that can store a block whose ID the caller
// computed already without hashing it again. Send uses it for the blocks
// it built, whose IDs were hashed side by side.
type KnownPutter interface {
	PutKnown(ctx context.Context, id block.ID, blk []byte, lifetime time.Duration) error
}

// DataManyPutter is a Network that stores a mail's data blocks together:
// one request per holder where it knows the holders, workers requests at
// once. done is called with the index of each block once it is stored,
// from any goroutine. Send and Store use it when the Network has it.
type DataManyPutter interface {
	PutDataMany(ctx context.Context, ids []block.ID, blocks [][]byte, lifetime time.Duration, workers int, done func(i int)) error
}

// MailDeleter is a Network that deletes a fetched mail's index block and
// data blocks together (the data blocks share one deletion preimage):
// one request per holder where it knows the holders. deleteMail uses it
// when the Network has it; shards is empty when the mail's data blocks
// carry no deletion hash. The error names the blocks no node deleted.
type MailDeleter interface {
	DeleteMail(ctx context.Context, index block.ID, indexPreimage [32]byte, shards []block.ID, shardPreimage [32]byte) error
}

// LookupPubkey fetches the pubkey block of addr and verifies it: its
// bytes hash to addr and its self-signature and keys check out.
func LookupPubkey(ctx context.Context, net Network, addr block.ID) (*identity.PublicKey, error) {
	b, err := net.Get(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("delivery: looking up %s: %w", identity.FormatAddress(addr), err)
	}
	if got := block.Sum(b); got != addr {
		return nil, fmt.Errorf("delivery: looking up %s: the network returned a block with ID %s", identity.FormatAddress(addr), got.Short())
	}
	p, err := identity.ParsePubkey(b)
	if err != nil {
		return nil, fmt.Errorf("delivery: %s is not a valid pubkey block: %w", identity.FormatAddress(addr), err)
	}
	return p, nil
}
