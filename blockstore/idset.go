package blockstore

import (
	"bytes"
	"slices"

	"github.com/flowmail/flowmail/block"
)

// idSet is a sorted set of IDs: the memory store's ordered indexes (index
// block IDs for List, distances from self for eviction). Insertion moves
// memory, which is cheap at the sizes a simulated node holds.
type idSet []block.ID

func compareIDs(a, b block.ID) int { return bytes.Compare(a[:], b[:]) }

// search returns where id is or would be inserted.
func (s idSet) search(id block.ID) (int, bool) {
	return slices.BinarySearchFunc(s, id, compareIDs)
}

func (s *idSet) insert(id block.ID) {
	if i, ok := s.search(id); !ok {
		*s = slices.Insert(*s, i, id)
	}
}

func (s *idSet) remove(id block.ID) {
	if i, ok := s.search(id); ok {
		*s = slices.Delete(*s, i, i+1)
	}
}
