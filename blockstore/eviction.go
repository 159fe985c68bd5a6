package blockstore

import (
	"fmt"
	"iter"

	"github.com/flowmail/flowmail/block"
)

// planEviction chooses which blocks to drop so need more bytes fit. farthest
// yields the unpinned blocks held, as (distance from self, size), farthest
// first. Only blocks farther than the new block (at distance dist) may go,
// unless it is pinned: a node keeps what it is responsible for and refuses
// what lies beyond it. The plan is all or nothing.
func planEviction(need int64, dist block.ID, pinned bool, farthest iter.Seq2[block.ID, int64]) ([]block.ID, error) {
	var victims []block.ID
	var freed int64
	for d, size := range farthest {
		if freed >= need {
			break
		}
		if !pinned && !block.Less(dist, d) {
			break
		}
		victims = append(victims, d)
		freed += size
	}
	if freed < need {
		return nil, fmt.Errorf("%w: %d more bytes needed, only %d held by blocks farther from this node than the new one", ErrFull, need, freed)
	}
	return victims, nil
}

// others is farthest without the block at distance dist: the version of
// a record that a new one replaces is removed anyway, never evicted.
func others(dist block.ID, farthest iter.Seq2[block.ID, int64]) iter.Seq2[block.ID, int64] {
	return func(yield func(block.ID, int64) bool) {
		for d, size := range farthest {
			if d != dist && !yield(d, size) {
				return
			}
		}
	}
}
