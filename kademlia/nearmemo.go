package kademlia

import (
	"sync"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/transport"
)

// Bounds of nearMemo: how many IDs it remembers, and for how long.
const (
	nearMemoEntries = 4096
	nearMemoTTL     = 10 * time.Minute
)

// nearMemo remembers, for a block this node just got by a lookup, the
// closest contacts that lookup knew of: the 2R closest for a data block,
// the K closest for a block held by K (an index block: wide). A
// recipient deletes the mail it fetched right after fetching it; the
// delete lookup then starts at those contacts, where the block's
// holders almost always are, and asks them in one round
// (docs/PROTOCOL.md section 8).
// It is bounded in entries (a ring of the last nearMemoEntries
// remembered: the oldest goes, in constant time) and age; a delete takes
// its entry.
type nearMemo struct {
	mu      sync.Mutex
	entries map[block.ID]nearEntry
	ring    []nearSlot // grows to nearMemoEntries, then wraps
	next    int        // the ring's oldest slot once it is full
	seq     uint64     // remembers so far
}

type nearEntry struct {
	contacts []transport.Contact
	wide     bool // held by K, not R
	at       time.Time
	seq      uint64
}

// nearSlot is the ring's record of one remember: the entry it made goes
// with the slot unless a later remember of the same ID replaced it.
type nearSlot struct {
	id  block.ID
	seq uint64
}

// remember keeps contacts for id in place of the oldest entry; wide
// says the block is held by K.
func (n *nearMemo) remember(id block.ID, contacts []transport.Contact, wide bool, now time.Time) {
	if len(contacts) == 0 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.entries == nil {
		n.entries = make(map[block.ID]nearEntry)
	}
	n.seq++
	slot := nearSlot{id: id, seq: n.seq}
	if len(n.ring) < nearMemoEntries {
		n.ring = append(n.ring, slot)
	} else {
		if old := n.ring[n.next]; n.entries[old.id].seq == old.seq {
			delete(n.entries, old.id)
		}
		n.ring[n.next] = slot
		n.next = (n.next + 1) % nearMemoEntries
	}
	n.entries[id] = nearEntry{contacts: contacts, wide: wide, at: now, seq: n.seq}
}

// take returns and forgets the contacts remembered for id, nil if none
// or if they are older than nearMemoTTL, and whether the block is held
// by K.
func (n *nearMemo) take(id block.ID, now time.Time) ([]transport.Contact, bool) {
	return n.lookup(id, now, true)
}

// peek is take without forgetting: for a batch delete, whose blocks that
// fall short go on to a delete lookup that takes them.
func (n *nearMemo) peek(id block.ID, now time.Time) ([]transport.Contact, bool) {
	return n.lookup(id, now, false)
}

func (n *nearMemo) lookup(id block.ID, now time.Time, forget bool) ([]transport.Contact, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	e, ok := n.entries[id]
	if !ok {
		return nil, false
	}
	if forget {
		delete(n.entries, id)
	}
	if now.Sub(e.at) > nearMemoTTL {
		return nil, false
	}
	return e.contacts, e.wide
}
