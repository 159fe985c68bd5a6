package blockstore

import (
	"context"
	"errors"
	"time"

	"github.com/flowmail/flowmail/block"
)

// Meta is what a store keeps beside each block.
type Meta struct {
	// ID is the key the block is kept and asked for: its block ID, or a
	// record's slot.
	ID block.ID
	// BlockID is block.Sum of the bytes: ID, except for a record.
	BlockID  block.ID
	Type     block.Type
	Size     int
	StoredAt time.Time // when this store first accepted the block
	Expires  time.Time
	Pinned   bool // never evicted for quota (the node's own pubkey block)
}

// Remaining is the lifetime left at now, never negative.
func (m Meta) Remaining(now time.Time) time.Duration {
	if d := m.Expires.Sub(now); d > 0 {
		return d
	}
	return 0
}

// PutOptions qualify a Put.
type PutOptions struct {
	// Pinned blocks are never evicted for quota (the node's own pubkey
	// block); they are not charged to any source.
	Pinned bool
	// Source names who asked for the block to be stored; its budgets
	// decide whether the Put may evict others' blocks (budget.go). The
	// zero Source is the node itself: no budget.
	Source Source
	// Sync makes Put return once the block is on disk. Without it Put
	// returns once the block is in the store: readable, and kept if the
	// process dies, but on disk only at the next sync, at most
	// Config.SyncInterval later (docs/PROTOCOL.md section 5: a machine
	// that loses power loses the blocks of that interval, as if it had
	// left the network for them).
	Sync bool
}

// Source names the sender of a Put with opaque keys the caller chooses,
// each charged for the bytes it makes the store write: Node for the
// sending node (its ID) and Group for its IP group (its /24 or /48). An
// empty key is not charged.
type Source struct {
	Node  string
	Group string
}

// MinExtension is the smallest move of a held block's expiry a re-store
// makes (less when less time is left): a replayed STORE writes nothing.
const MinExtension = time.Hour

// ListEntry is one index block found by List.
type ListEntry struct {
	ID       block.ID
	StoredAt time.Time
}

// Stats describe a store's contents.
type Stats struct {
	Blocks     int
	Bytes      int64
	QuotaBytes int64 // 0: no quota
	Evicted    uint64
	Expired    uint64
	Corrupt    uint64 // blocks dropped because their bytes no longer hash to their ID
	// OverBudget counts Puts refused with ErrOverBudget since the store
	// was opened (not persisted).
	OverBudget uint64
	// Syncs counts the times the store put its changes on disk since it
	// was opened (not persisted): for a Sync Put, or on the interval.
	Syncs uint64
}

// Store keeps verified blocks by ID. Implementations are safe for
// concurrent use.
type Store interface {
	// Put verifies b (identity.Check), computes its ID and keeps it for
	// lifetime, capped at block.MaxLifetime, under the key it returns:
	// the ID. Storing a block already held keeps the later expiry, moved
	// only by at least MinExtension (or the time left, when less), and
	// writes nothing else. When Put returns nil the block is held, and on
	// disk if PutOptions.Sync.
	//
	// A record (block type 4) is verified by record.Parse and kept under
	// its slot, which Put returns; a slot holds one record, the newest:
	// a record that record.Supersedes refuses for the one held is refused
	// with ErrRefused wrapping the record package's reason (stale, forked,
	// revoked); one that supersedes it replaces it, with its own lifetime;
	// the same bytes again extend the expiry as for any block.
	Put(ctx context.Context, b []byte, lifetime time.Duration, opt PutOptions) (block.ID, error)
	// PutMany is Put for several blocks with one lifetime and options (a
	// mail's shards from one STORE_MANY): the ID and error of each, in
	// order. Blocks other than records are hashed side by side
	// (block.SumMany) and committed together.
	PutMany(ctx context.Context, bs [][]byte, lifetime time.Duration, opt PutOptions) ([]block.ID, []error)
	// Get returns the block kept at id and its metadata. The bytes hash to
	// id, or are a verified record whose slot is id: Put checked that,
	// and Get checks they did not change since.
	Get(ctx context.Context, id block.ID) ([]byte, Meta, error)
	// Stat returns the metadata of a held block.
	Stat(ctx context.Context, id block.ID) (Meta, error)
	// Delete drops id if preimage matches its deletion hash and leaves a
	// tombstone until the block would have expired.
	Delete(ctx context.Context, id block.ID, preimage [32]byte) error
	// DeleteMany is Delete for several blocks, each with its preimage (a
	// mail's index and data blocks), in one go: the error of each, in
	// order.
	DeleteMany(ctx context.Context, ids []block.ID, preimages [][32]byte) []error
	// Drop forgets a held block without a tombstone, so it may be stored
	// again: a holder that handed a data block to the nodes closer to it
	// (docs/PROTOCOL.md 9.7). ErrNotFound when it is not held.
	Drop(ctx context.Context, id block.ID) error
	// List returns index blocks whose IDs share at least bits leading bits
	// with target, stored at or after since, in ascending ID order, after
	// the given ID when after is not nil, at most limit of them; more
	// reports whether entries were left out.
	List(ctx context.Context, target block.ID, bits int, since time.Time, after *block.ID, limit int) (entries []ListEntry, more bool, err error)
	// Range calls fn for the metadata of every live block, in no set
	// order, until fn returns an error (which Range returns).
	Range(ctx context.Context, fn func(Meta) error) error
	// Stats returns counts and sizes.
	Stats() Stats
	// Close flushes and releases the store and stops its goroutines.
	Close() error
}

// Errors of Store methods, wrapped with detail.
var (
	ErrNotFound = errors.New("blockstore: block not found")
	// ErrInvalid: the block breaks a rule of its layout or signature; for
	// a record it wraps the record package's reason (record.ErrTooLarge,
	// record.ErrWrongKey, record.ErrSignature, record.ErrRevoked for an
	// event after the log ended...).
	ErrInvalid = errors.New("blockstore: invalid block")
	// ErrRefused: the record held at the slot refuses the new one; it wraps
	// record.ErrStale, record.ErrForked or record.ErrRevoked.
	ErrRefused   = errors.New("blockstore: refused by the record held at its slot")
	ErrForbidden = errors.New("blockstore: wrong deletion preimage")
	ErrDeleted   = errors.New("blockstore: block was deleted")
	ErrFull      = errors.New("blockstore: quota full")
	ErrClosed    = errors.New("blockstore: closed")
	ErrCorrupt   = errors.New("blockstore: stored bytes do not match their ID")
	// ErrOverBudget refuses a Put that would evict other blocks for a
	// source that already had its budget (PutOptions.Source).
	ErrOverBudget = errors.New("blockstore: source over its storage budget")
)

// notFound is ErrNotFound for a block ID, formatted only when read: "not
// held" is the usual answer of a Stat (a simulation asks every node for
// every block), and formatting it cost more than the lookup.
type notFound block.ID

func (e notFound) Error() string { return ErrNotFound.Error() + ": " + block.ID(e).Short() }
func (e notFound) Unwrap() error { return ErrNotFound }

// Errors of OpenBadger, wrapped with detail.
var (
	// ErrLayout: the directory holds a store of another layout version
	// (an older release's); this code neither reads nor converts it.
	ErrLayout = errors.New("blockstore: store directory has another layout version")
	// ErrOtherNode: the directory was created for another node ID.
	ErrOtherNode = errors.New("blockstore: store directory belongs to another node")
	// ErrLocked: another process has the directory open.
	ErrLocked = errors.New("blockstore: store directory is in use by another process")
)
