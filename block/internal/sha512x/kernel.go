package sha512x

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"github.com/flowmail/flowmail/internal/sha512block"
)

//go:generate go run ../../../internal/asmgen -pkg sha512x -out .

// MaxLanes is the widest kernel's lane count.
const MaxLanes = 8

// ChunkSize is the SHA-512 block size, what one compression consumes.
const ChunkSize = 128

// A Kernel runs SHA-512 compressions on Lanes independent states at once.
type Kernel struct {
	Name  string
	Lanes int
	// MinBatch is the fewest messages of equal length worth hashing
	// together with this kernel rather than one after another with
	// crypto/sha512. BenchmarkCompress on a Zen 5 core: one 8-lane
	// AVX-512 call costs about as much as 2 messages hashed alone (it
	// pays from 2), one 4-lane AVX2 call as much as 3 (it pays from 4).
	MinBatch int
	isa      isa
}

// isa names the instruction set of a kernel. A kernel runs n compressions
// on each lane of the params block p (kernel_layout.go): lane l
// compresses the n consecutive chunks at src[l] into its state. The calls
// are direct (see runSIMD), so that the //go:noescape of the assembly
// keeps State and the addresses on the caller's stack.
type isa uint8

const (
	isaGo isa = iota
	isaAVX512
	isaAVX2
)

// Best returns the fastest SIMD kernel this machine runs, or nil when it
// has none (or under the purego build tag).
func Best() *Kernel {
	if len(simd) == 0 {
		return nil
	}
	return simd[0]
}

// Kernels lists the SIMD kernels this machine runs, fastest first.
func Kernels() []*Kernel { return append([]*Kernel(nil), simd...) }

// Portable returns the pure-Go kernel with lanes lanes (1 to MaxLanes),
// which compresses one lane after another.
func Portable(lanes int) *Kernel {
	if lanes < 1 || lanes > MaxLanes {
		panic(fmt.Sprintf("sha512x: %d lanes", lanes))
	}
	return &Kernel{Name: fmt.Sprintf("go%d", lanes), Lanes: lanes, MinBatch: 1, isa: isaGo}
}

func portableBlocks(p []uint64, src *[MaxLanes]*byte, n uint64, lanes int) {
	for l := range lanes {
		var h [8]uint64
		for w := range h {
			h[w] = p[w*lanes+l]
		}
		msg := unsafe.Slice(src[l], n*ChunkSize)
		for c := range n {
			w := sha512block.Words(msg[c*ChunkSize:])
			sha512block.Block(&h, &w)
		}
		for w := range h {
			p[w*lanes+l] = h[w]
		}
	}
}

// State holds the chaining states of a kernel's lanes, laid out for the
// kernel, and its scratch. It is large (about 1.3 KiB) and meant to live
// on the caller's stack; it is not safe for concurrent use.
type State struct {
	k   *Kernel
	off int // of the 64-byte aligned params block in raw
	raw [paramWords + 7]uint64
}

// Init readies s for k, every lane's state unset.
func (s *State) Init(k *Kernel) {
	s.k = k
	s.off = int((64 - uintptr(unsafe.Pointer(&s.raw[0]))%64) % 64 / 8)
}

// Kernel returns the kernel s was readied for.
func (s *State) Kernel() *Kernel { return s.k }

// Reset sets lane's state to the SHA-512/256 initial value.
func (s *State) Reset(lane int) {
	p, lanes := s.raw[s.off:s.off+stateWords], s.k.Lanes
	for w, v := range sha512block.IV256 {
		p[w*lanes+lane] = v
	}
}

// Sum256 returns lane's first four state words, big-endian: its
// SHA-512/256 digest once its padded message has been compressed.
func (s *State) Sum256(lane int) (d [32]byte) {
	p, lanes := s.raw[s.off:s.off+stateWords], s.k.Lanes
	for w := range 4 {
		binary.BigEndian.PutUint64(d[w*8:], p[w*lanes+lane])
	}
	return d
}

// Compress runs n compressions on every lane: lane l compresses the first
// n chunks of src[l] into its state. src holds one slice per lane, each
// at least n chunks long.
func (s *State) Compress(src [][]byte, n int) {
	if len(src) != s.k.Lanes {
		panic(fmt.Sprintf("sha512x: %d sources for %d lanes", len(src), s.k.Lanes))
	}
	if n <= 0 {
		return
	}
	var ptr [MaxLanes]*byte
	for l, b := range src {
		if len(b) < n*ChunkSize {
			panic(fmt.Sprintf("sha512x: lane %d holds %d bytes, less than %d chunks", l, len(b), n))
		}
		ptr[l] = &b[0]
	}
	if !s.k.runSIMD(&s.raw[s.off], &ptr, uint64(n)) {
		portableBlocks(s.raw[s.off:s.off+stateWords], &ptr, uint64(n), s.k.Lanes)
	}
}
