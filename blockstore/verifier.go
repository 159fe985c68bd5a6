package blockstore

import (
	"sync"
	"sync/atomic"

	"github.com/flowmail/flowmail/block"
)

// verifier checks that bytes read back from disk hash to the ID asked
// for, letting concurrent Gets share block.SumMany's SIMD lanes by
// combining, with no goroutine of its own:
//
//   - a Get that finds nobody hashing hashes its block at once, alone: a
//     lone Get never waits for company;
//   - a Get that finds someone hashing queues its block and sleeps,
//     unless the queue then holds a full batch (block.Lanes() blocks
//     with its own): it hashes that batch itself, beside the other
//     hasher, so no core idles while blocks wait;
//   - a hasher that is done wakes the owners of its batch with their
//     verdicts; if blocks are still queued and it was the last hasher,
//     it hands its role to the oldest, whose owner wakes to hash it and
//     up to lanes-1 more. (While another hasher runs, the queue is left
//     to grow until that one is done: batches come out larger.)
//
// So every Get hashes at most one batch, batches form only from Gets
// already waiting, and while a block is queued someone is hashing.
type verifier struct {
	sum   func(blocks [][]byte, ids []block.ID) // block.SumMany; tests may wrap it
	lanes int

	mu      sync.Mutex
	hashers int        // hashing now, or woken to
	queue   []*check   // waiting, oldest first
	spare   []*scratch // hashers' buffers not in use

	batches, batched atomic.Uint64 // batches of more than one block, and their blocks
}

// check is a queued block and its verdict.
type check struct {
	b    []byte
	id   block.ID
	ok   bool // set before done
	lead bool // woken to hash rather than with a verdict
	done sync.WaitGroup
}

// maxLanes bounds block.Lanes().
const maxLanes = 8

// scratch is one hasher's buffers, kept for reuse: the sum function is
// called through a variable, so buffers on the stack would escape anyway.
type scratch struct {
	others [maxLanes - 1]*check
	n      int // of others in use
	blocks [maxLanes][]byte
	ids    [maxLanes]block.ID
}

func newVerifier(sum func([][]byte, []block.ID), lanes int) *verifier {
	return &verifier{sum: sum, lanes: min(lanes, maxLanes)}
}

// waiting is how many checks are queued (for tests).
func (v *verifier) waiting() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.queue)
}

// verify reports whether b hashes to id.
func (v *verifier) verify(b []byte, id block.ID) bool {
	if v.lanes < 2 {
		return block.Sum(b) == id
	}
	v.mu.Lock()
	if v.hashers == 0 || len(v.queue)+1 >= v.lanes {
		v.hashers++
		s := v.start(v.lanes - 1)
		v.mu.Unlock()
		return v.hash(s, b, id)
	}
	c := &check{b: b, id: id}
	c.done.Add(1)
	v.queue = append(v.queue, c)
	v.mu.Unlock()
	c.done.Wait()
	if c.lead { // the role came with the wake-up
		v.mu.Lock()
		s := v.start(v.lanes - 1)
		v.mu.Unlock()
		c.ok = v.hash(s, c.b, c.id)
	}
	return c.ok
}

// start gives a hasher its buffers and up to n queued checks besides its
// own block; v.mu is held.
func (v *verifier) start(n int) *scratch {
	var s *scratch
	if k := len(v.spare); k > 0 {
		s, v.spare = v.spare[k-1], v.spare[:k-1]
	} else {
		s = new(scratch)
	}
	s.n = copy(s.others[:n], v.queue)
	v.dequeue(s.n)
	return s
}

// dequeue drops the n oldest checks; v.mu is held.
func (v *verifier) dequeue(n int) {
	rest := copy(v.queue, v.queue[n:])
	clear(v.queue[rest:])
	v.queue = v.queue[:rest]
}

// hash hashes b and the checks start took, wakes their owners with their
// verdicts, hands the caller's role on and reports whether b hashes to
// id.
func (v *verifier) hash(s *scratch, b []byte, id block.ID) bool {
	n := 1 + s.n
	s.blocks[0] = b
	for i, c := range s.others[:s.n] {
		s.blocks[1+i] = c.b
	}
	v.sum(s.blocks[:n], s.ids[:n])
	if n > 1 {
		v.batches.Add(1)
		v.batched.Add(uint64(n))
	}
	for i, c := range s.others[:s.n] {
		c.ok = s.ids[1+i] == c.id
		c.done.Done()
	}
	ok := s.ids[0] == id
	clear(s.others[:])
	clear(s.blocks[:])

	v.mu.Lock()
	defer v.mu.Unlock()
	v.spare = append(v.spare, s)
	if len(v.queue) == 0 || v.hashers > 1 {
		// Nothing queued, or another hasher will hand on when done.
		v.hashers--
		return ok
	}
	next := v.queue[0]
	v.dequeue(1)
	next.lead = true
	next.done.Done()
	return ok
}
