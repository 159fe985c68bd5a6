package mail

import (
	"fmt"
	"math/bits"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/reedsolomon"
)

// Codec holds what is worth keeping from one mail to the next: the zstd
// encoder and decoder, one Reed-Solomon coder per (k, m), and buffers.
// Fresh coding buffers per mail make erasure coding several times slower,
// so a process that handles many mails keeps one Codec. It is safe for
// concurrent use.
type Codec struct {
	zenc *zstd.Encoder
	zdec *zstd.Decoder

	mu  sync.Mutex
	rs  map[[2]int]reedsolomon.Encoder
	buf map[int]*sync.Pool // by capacity, a power of two
}

// NewCodec returns a Codec. Close releases it.
func NewCodec() (*Codec, error) {
	zenc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return nil, fmt.Errorf("mail: zstd encoder: %w", err)
	}
	zdec, err := zstd.NewReader(nil,
		zstd.WithDecoderMaxMemory(MaxDecompressed),
		zstd.WithDecoderMaxWindow(MaxDecompressed),
		// Without it the limit is checked only between frames and blocks.
		zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		zenc.Close()
		return nil, fmt.Errorf("mail: zstd decoder: %w", err)
	}
	return &Codec{zenc: zenc, zdec: zdec, rs: map[[2]int]reedsolomon.Encoder{}, buf: map[int]*sync.Pool{}}, nil
}

// Close releases the coders. The Codec must not be used afterwards.
func (c *Codec) Close() error {
	c.zdec.Close()
	return c.zenc.Close()
}

// coder returns the cached Reed-Solomon coder for k data and m parity
// shards: klauspost/reedsolomon's default construction, the Vandermonde
// matrix times the inverse of its top square (spec 9.4).
func (c *Codec) coder(k, m int) (reedsolomon.Encoder, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.rs[[2]int{k, m}]; ok {
		return e, nil
	}
	e, err := reedsolomon.New(k, m)
	if err != nil {
		return nil, fmt.Errorf("mail: Reed-Solomon %d+%d: %w", k, m, err)
	}
	c.rs[[2]int{k, m}] = e
	return e, nil
}

// bufClass is the capacity of the buffers that serve n bytes: a power of
// two up to 1 MiB, a multiple of 1 MiB above, so that a few dozen pools
// serve every size and no buffer wastes more than 1 MiB.
func bufClass(n int) int {
	const mib = 1 << 20
	if n <= mib {
		return 1 << bits.Len(uint(max(n, 4096)-1))
	}
	return (n + mib - 1) / mib * mib
}

// getBuf returns a buffer of length n with unspecified contents and
// capacity bufClass(n).
func (c *Codec) getBuf(n int) []byte {
	size := bufClass(n)
	c.mu.Lock()
	p := c.buf[size]
	if p == nil {
		p = &sync.Pool{}
		c.buf[size] = p
	}
	c.mu.Unlock()
	if b, ok := p.Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, size)
}

// putBuf hands a buffer from getBuf back for reuse.
func (c *Codec) putBuf(b []byte) {
	if cap(b) == 0 || bufClass(cap(b)) != cap(b) {
		return // not from getBuf
	}
	c.mu.Lock()
	p := c.buf[cap(b)]
	c.mu.Unlock()
	if p != nil {
		b = b[:0]
		p.Put(&b)
	}
}
