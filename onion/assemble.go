package onion

import (
	"errors"
	"fmt"
	"time"

	"github.com/flowmail/flowmail/block"
)

// Bounds of the exit's assembly of PUT parts (section 14.9).
const (
	// AssemblyTimeout is how long an exit waits for the rest of a block
	// after its first part: the parts of a block leave the client
	// together and each waits at most MaxHopDelay at each of three hops.
	AssemblyTimeout = Hops * MaxHopDelay
	// MaxAssemblies is how many incomplete blocks an exit holds (16 MiB
	// of MaxBlockSize blocks); a new one displaces the oldest.
	MaxAssemblies = 64
)

// Errors of assembly.
var (
	ErrPartConflict = errors.New("onion: put part disagrees with earlier parts")
	ErrBlockID      = errors.New("onion: assembled block does not hash to its ID")
)

// Assembler puts the parts of PUT requests together at an exit. It is a
// state machine like Relay: time comes in as an argument.
type Assembler struct {
	pending map[block.ID]*assembly
}

type assembly struct {
	started  time.Time
	lifetime uint32
	buf      []byte
	parts    [][2]uint32 // [offset, end) of every part taken
	missing  int
	surbs    []SURB // reply blocks given with any part, answered at the end
}

// Add takes one part with the reply blocks that came with it. When the
// part completes its block, Add returns the block (whose ID has been
// checked), its lifetime and every reply block given with its parts; the
// exit stores it and answers through them.
func (a *Assembler) Add(now time.Time, p Put, surbs []SURB) (blk []byte, lifetime uint32, replies []SURB, err error) {
	if err := p.check(uint32(len(p.Chunk))); err != nil {
		return nil, 0, nil, err
	}
	a.expire(now)
	if a.pending == nil {
		a.pending = make(map[block.ID]*assembly)
	}
	as := a.pending[p.ID]
	if as == nil {
		if len(a.pending) >= MaxAssemblies {
			a.dropOldest()
		}
		as = &assembly{started: now, lifetime: p.Lifetime, buf: make([]byte, p.Total), missing: int(p.Total)}
		a.pending[p.ID] = as
	}
	if uint32(len(as.buf)) != p.Total {
		return nil, 0, nil, fmt.Errorf("%w: total %d, earlier %d", ErrPartConflict, p.Total, len(as.buf))
	}
	as.lifetime = max(as.lifetime, p.Lifetime)
	as.surbs = append(as.surbs, surbs...)
	start, end := p.Offset, p.Offset+uint32(len(p.Chunk))
	for _, r := range as.parts {
		if start == r[0] && end == r[1] {
			return nil, 0, nil, nil // the same part again
		}
		if start < r[1] && r[0] < end {
			delete(a.pending, p.ID)
			return nil, 0, as.surbs, fmt.Errorf("%w: bytes %d..%d overlap %d..%d", ErrPartConflict, start, end, r[0], r[1])
		}
	}
	as.parts = append(as.parts, [2]uint32{start, end})
	copy(as.buf[start:], p.Chunk)
	as.missing -= len(p.Chunk)
	if as.missing > 0 {
		return nil, 0, nil, nil
	}
	delete(a.pending, p.ID)
	if block.Sum(as.buf) != p.ID {
		return nil, 0, as.surbs, fmt.Errorf("%w: %s", ErrBlockID, p.ID.Short())
	}
	return as.buf, as.lifetime, as.surbs, nil
}

// Pending is the number of incomplete blocks.
func (a *Assembler) Pending() int { return len(a.pending) }

func (a *Assembler) expire(now time.Time) {
	for id, as := range a.pending {
		if now.Sub(as.started) >= AssemblyTimeout {
			delete(a.pending, id)
		}
	}
}

func (a *Assembler) dropOldest() {
	var oldest block.ID
	var t time.Time
	for id, as := range a.pending {
		if t.IsZero() || as.started.Before(t) {
			oldest, t = id, as.started
		}
	}
	delete(a.pending, oldest)
}

// SplitPut cuts a block into PUT parts for onion transport: the last part
// leaves room for surbs reply blocks, the others carry none.
func SplitPut(blk []byte, lifetime uint32, surbs int) ([]Put, error) {
	if len(blk) < 1 || len(blk) > block.MaxBlockSize {
		return nil, fmt.Errorf("%w: block of %d bytes", ErrExitBody, len(blk))
	}
	if surbs < 0 || MaxPutChunk(surbs) < 1 {
		return nil, fmt.Errorf("%w: %d reply blocks leave no room", ErrExitBody, surbs)
	}
	id := block.Sum(blk)
	var parts []Put
	off := 0
	for off < len(blk) {
		n := MaxPutChunk(0)
		if len(blk)-off <= MaxPutChunk(surbs) {
			n = len(blk) - off
		} else if len(blk)-off <= n {
			// What is left fits a part without reply blocks but not one
			// with them: this part leaves a full last part.
			n = len(blk) - off - MaxPutChunk(surbs)
		}
		parts = append(parts, Put{Lifetime: lifetime, ID: id, Total: uint32(len(blk)), Offset: uint32(off), Chunk: blk[off : off+n]})
		off += n
	}
	return parts, nil
}
