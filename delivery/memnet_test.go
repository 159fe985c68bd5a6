package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

var errNotFound = errors.New("memnet: block not found")

// memNet is an in-memory Network: a map guarded by a mutex, verifying
// blocks as a store does, with knobs to lose or corrupt blocks and to
// list as a dishonest node would.
type memNet struct {
	mu       sync.Mutex
	blocks   map[block.ID][]byte
	storedAt map[block.ID]time.Time
	now      time.Time // stored_at of the next Put
	drop     map[block.ID]bool
	corrupt  map[block.ID]bool
	listAll  bool       // LIST ignores bits, as a malicious node may
	made     []block.ID // listed first, though nobody holds them, as a lying node may
	listErr  error      // returned with the listing, as an incomplete one is
	puts     int
	putsOf   map[block.ID]int
	putLimit int // Puts fail once this many have succeeded (0: never), as a network that goes away
	gets     map[block.ID]int
	deletes  int
}

func newMemNet(now time.Time) *memNet {
	return &memNet{
		blocks: map[block.ID][]byte{}, storedAt: map[block.ID]time.Time{}, now: now,
		drop: map[block.ID]bool{}, corrupt: map[block.ID]bool{}, gets: map[block.ID]int{}, putsOf: map[block.ID]int{},
	}
}

func (n *memNet) Put(ctx context.Context, b []byte, lifetime time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if lifetime <= 0 || lifetime > block.MaxLifetime {
		return fmt.Errorf("memnet: lifetime %v", lifetime)
	}
	if _, err := identity.Check(b); err != nil {
		return err
	}
	id := block.Sum(b)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.putLimit > 0 && n.puts >= n.putLimit {
		return errors.New("memnet: network gone")
	}
	n.puts++
	n.putsOf[id]++
	if _, ok := n.blocks[id]; !ok {
		n.blocks[id] = bytes.Clone(b)
		n.storedAt[id] = n.now
	}
	return nil
}

func (n *memNet) Get(ctx context.Context, id block.ID) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.gets[id]++
	b, ok := n.blocks[id]
	if !ok || n.drop[id] {
		return nil, fmt.Errorf("%w: %s", errNotFound, id.Short())
	}
	b = bytes.Clone(b)
	if n.corrupt[id] {
		b[len(b)/2] ^= 0x40
	}
	return b, nil
}

func (n *memNet) List(ctx context.Context, target block.ID, bits int, since time.Time) ([]block.ID, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var ids []block.ID
	for id, b := range n.blocks {
		if block.Type(b[1]) != block.TypeIndex || n.storedAt[id].Before(since) {
			continue
		}
		if n.listAll || block.CommonPrefixLen(id, target) >= bits {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(a, b int) bool { return block.Less(ids[a], ids[b]) })
	return append(append([]block.ID(nil), n.made...), ids...), n.listErr
}

func (n *memNet) Delete(ctx context.Context, id block.ID, preimage [32]byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
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
	n.deletes++
	return nil
}

func (n *memNet) has(id block.ID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.blocks[id]
	return ok
}

func (n *memNet) putCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.puts
}

func (n *memNet) putCountOf(id block.ID) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.putsOf[id]
}

func (n *memNet) setPutLimit(limit int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.putLimit = limit
}

func (n *memNet) getCount(id block.ID) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.gets[id]
}

func (n *memNet) setDrop(id block.ID, v bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.drop[id] = v
}

func (n *memNet) setCorrupt(id block.ID, v bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.corrupt[id] = v
}

// putRaw stores b without the checks Put makes, as a hostile node could.
func (n *memNet) putRaw(b []byte) block.ID {
	id := block.Sum(b)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.blocks[id] = bytes.Clone(b)
	n.storedAt[id] = n.now
	return id
}
