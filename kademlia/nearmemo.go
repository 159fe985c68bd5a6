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

// nearMemo remembers, for a data block this node just got by a lookup,
// the 2R closest contacts that lookup knew of. A recipient deletes the
// shards it fetched right after fetching them; the delete then asks
// those contacts directly, where the block's R holders almost always
// are, instead of looking the ID up again (docs/PROTOCOL.md section 8).
// It is bounded in entries and age; a delete takes its entry.
type nearMemo struct {
	mu      sync.Mutex
	entries map[block.ID]nearEntry
}

type nearEntry struct {
	contacts []transport.Contact
	at       time.Time
}

// remember keeps contacts for id, dropping expired entries, and some
// other entry if the memo is still full.
func (n *nearMemo) remember(id block.ID, contacts []transport.Contact, now time.Time) {
	if len(contacts) == 0 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.entries == nil {
		n.entries = make(map[block.ID]nearEntry)
	}
	if len(n.entries) >= nearMemoEntries {
		for k, e := range n.entries {
			if now.Sub(e.at) > nearMemoTTL {
				delete(n.entries, k)
			}
		}
		for k := range n.entries {
			if len(n.entries) < nearMemoEntries {
				break
			}
			delete(n.entries, k)
		}
	}
	n.entries[id] = nearEntry{contacts: contacts, at: now}
}

// take returns and forgets the contacts remembered for id, nil if none
// or if they are older than nearMemoTTL.
func (n *nearMemo) take(id block.ID, now time.Time) []transport.Contact {
	n.mu.Lock()
	defer n.mu.Unlock()
	e, ok := n.entries[id]
	if !ok {
		return nil
	}
	delete(n.entries, id)
	if now.Sub(e.at) > nearMemoTTL {
		return nil
	}
	return e.contacts
}
