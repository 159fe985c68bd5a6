package maillist

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

var errNotFound = errors.New("memnet: block not found")

// memNet is the smallest delivery.Network that behaves as the DHT does
// for these tests: blocks verified on Put, LIST by prefix over index
// blocks, deletion with the preimage. Times are ignored: every LIST
// returns every matching block, and the processed set skips old ones.
type memNet struct {
	mu     sync.Mutex
	blocks map[block.ID][]byte
}

func newMemNet() *memNet { return &memNet{blocks: map[block.ID][]byte{}} }

func (n *memNet) Put(ctx context.Context, b []byte, lifetime time.Duration) error {
	if _, err := identity.Check(b); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.blocks[block.Sum(b)] = bytes.Clone(b)
	return ctx.Err()
}

func (n *memNet) Get(ctx context.Context, id block.ID) ([]byte, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	b, ok := n.blocks[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", errNotFound, id.Short())
	}
	return bytes.Clone(b), ctx.Err()
}

func (n *memNet) List(ctx context.Context, target block.ID, bits int, since time.Time) ([]block.ID, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var ids []block.ID
	for id, b := range n.blocks {
		if block.Type(b[1]) == block.TypeIndex && block.CommonPrefixLen(id, target) >= bits {
			ids = append(ids, id)
		}
	}
	return ids, ctx.Err()
}

func (n *memNet) Delete(ctx context.Context, id block.ID, preimage [32]byte) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	b, ok := n.blocks[id]
	if !ok {
		return fmt.Errorf("%w: %s", errNotFound, id.Short())
	}
	h, _, err := block.ParseHeader(b)
	if err != nil {
		return err
	}
	if !h.HasDeletion || h.DeletionHash != block.DeletionHash(preimage) {
		return fmt.Errorf("memnet: wrong deletion preimage for %s", id.Short())
	}
	delete(n.blocks, id)
	return ctx.Err()
}

// indexBlocksFor returns the stored index blocks routable to r.
func (n *memNet) indexBlocksFor(r block.ID, bits int) map[block.ID][]byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := map[block.ID][]byte{}
	for id, b := range n.blocks {
		if block.Type(b[1]) == block.TypeIndex && block.CommonPrefixLen(id, r) >= bits {
			out[id] = bytes.Clone(b)
		}
	}
	return out
}
