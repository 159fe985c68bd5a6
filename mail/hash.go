package mail

import (
	"crypto/sha512"
	"hash"
	"sync"

	"github.com/flowmail/flowmail/block"
)

// labelMessage separates the message hash (spec 9.2) from every other
// hash of the protocol.
const labelMessage = "flowmail/v1 message"

// hashLanes is how many chunks messageHasher gathers before hashing them
// side by side: as many as block.SumMany has lanes on any machine.
const hashLanes = 8

// messageHasher computes the message hash of spec 9.2,
//
//	LH("flowmail/v1 message", Sum(c_0) || Sum(c_1) || ...)
//
// over the HashChunk-byte chunks c_i of a message (the last may be
// shorter), where Sum is the block ID function. The chunk IDs are
// computed several at a time in SIMD lanes (block.SumMany), so a message
// is hashed at several times the rate of one SHA-512 stream, and in
// pieces, as it streams by.
type messageHasher struct {
	outer hash.Hash
	buf   []byte // bytes of chunks not hashed yet: up to hashLanes whole chunks
	n     int64  // bytes written
	lanes [hashLanes][]byte
	ids   [hashLanes]block.ID
}

// hashBuffer is the size of a messageHasher's buffer.
const hashBuffer = hashLanes * HashChunk

// newMessageHasher returns a hasher that gathers chunks in buf (length
// hashBuffer at least), or in a buffer of its own when buf is nil.
func newMessageHasher(buf []byte) *messageHasher {
	if buf == nil {
		buf = make([]byte, hashBuffer)
	}
	h := &messageHasher{outer: sha512.New512_256(), buf: buf[:0:hashBuffer]}
	h.outer.Write([]byte{byte(len(labelMessage))})
	h.outer.Write([]byte(labelMessage))
	return h
}

// Write never fails.
func (h *messageHasher) Write(p []byte) (int, error) {
	n := len(p)
	h.n += int64(n)
	for len(p) > 0 {
		if len(h.buf) == 0 && len(p) >= HashChunk {
			// Whole chunks straight from p, without copying.
			c := min(len(p), cap(h.buf)) / HashChunk * HashChunk
			h.sum(p[:c])
			p = p[c:]
			continue
		}
		c := copy(h.buf[len(h.buf):cap(h.buf)], p)
		h.buf, p = h.buf[:len(h.buf)+c], p[c:]
		if len(h.buf) == cap(h.buf) {
			h.sum(h.buf)
			h.buf = h.buf[:0]
		}
	}
	return n, nil
}

// sum hashes b, whole chunks but for a shorter last one, into the outer
// hash.
func (h *messageHasher) sum(b []byte) {
	chunks := h.lanes[:0]
	for len(b) > 0 {
		c := min(len(b), HashChunk)
		chunks, b = append(chunks, b[:c]), b[c:]
	}
	ids := h.ids[:len(chunks)]
	block.SumMany(chunks, ids)
	for _, id := range ids {
		h.outer.Write(id[:])
	}
}

// Sum returns the message hash of what was written. The hasher must not
// be used afterwards.
func (h *messageHasher) Sum() (out [32]byte) {
	h.sum(h.buf)
	h.buf = nil
	h.outer.Sum(out[:0])
	return out
}

// MessageHash is the message hash of spec 9.2 of msg: what the envelope
// signature covers in place of the message.
func MessageHash(msg []byte) [32]byte {
	h := newMessageHasher(nil)
	h.Write(msg)
	return h.Sum()
}

// sumBlocks is block.SumMany split over up to workers goroutines.
func sumBlocks(blocks [][]byte, ids []block.ID, workers int) {
	n := min(workers, len(blocks)/(2*hashLanes))
	if n <= 1 {
		block.SumMany(blocks, ids)
		return
	}
	var wg sync.WaitGroup
	per := (len(blocks) + n - 1) / n
	for lo := 0; lo < len(blocks); lo += per {
		hi := min(lo+per, len(blocks))
		wg.Add(1)
		go func() {
			defer wg.Done()
			block.SumMany(blocks[lo:hi], ids[lo:hi])
		}()
	}
	wg.Wait()
}
