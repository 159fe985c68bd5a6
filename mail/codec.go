package mail

import (
	"errors"
	"fmt"
	"io"
	"math/bits"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/reedsolomon"
)

// Codec holds what is worth keeping from one mail to the next: zstd
// encoders and decoders, one Reed-Solomon coder per (k, m), and buffers.
// Fresh coding buffers per mail make erasure coding several times
// slower, so a process that handles many mails keeps one Codec. It is
// safe for concurrent use.
type Codec struct {
	mu     sync.Mutex
	rs     map[[2]int]reedsolomon.Encoder
	buf    map[int]*sync.Pool // by capacity (bufClass)
	zencs  [2][]*zstd.Encoder // idle, by encoderKind
	zdecs  []*zstd.Decoder    // idle
	closed bool
}

// maxIdleCoders bounds the idle zstd coders a Codec keeps of each kind.
const maxIdleCoders = 4

// NewCodec returns a Codec. Close releases it.
func NewCodec() (*Codec, error) {
	return &Codec{rs: map[[2]int]reedsolomon.Encoder{}, buf: map[int]*sync.Pool{}}, nil
}

// Close releases the coders. The Codec must not be used afterwards.
func (c *Codec) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, es := range c.zencs {
		for _, e := range es {
			errs = append(errs, e.Close())
		}
	}
	for _, d := range c.zdecs {
		d.Close()
	}
	c.zencs, c.zdecs, c.closed = [2][]*zstd.Encoder{}, nil, true
	return errors.Join(errs...)
}

// encoderKind says whether an encoder entropy-codes the literals of
// blocks where it finds no match (spec 9.3 step 1).
type encoderKind int

const (
	codeLiterals encoderKind = iota // text, and base64 attachments
	rawLiterals                     // bytes that look random
)

// encoder returns a zstd encoder of kind codeLiterals writing to w.
func (c *Codec) encoder(w io.Writer) (*zstd.Encoder, error) { return c.encoderOf(w, codeLiterals) }

// encoderOf returns a zstd encoder of kind k writing to w (spec 9.3: one
// frame, a window of at most MaxWindow). It works in the calling
// goroutine, so its output depends on its input alone.
func (c *Codec) encoderOf(w io.Writer, k encoderKind) (*zstd.Encoder, error) {
	c.mu.Lock()
	if n := len(c.zencs[k]); n > 0 {
		e := c.zencs[k][n-1]
		c.zencs[k] = c.zencs[k][:n-1]
		c.mu.Unlock()
		e.Reset(w)
		return e, nil
	}
	c.mu.Unlock()
	// No content checksum (spec 9.3): the AEAD authenticates every byte
	// of the frame and the signature the message; the checksum was one
	// more pass over the mail. With codeLiterals, literals are
	// entropy-coded even in blocks without matches: at this level zstd
	// otherwise stores such blocks raw, and a base64 attachment (6 bits
	// of every 8) is exactly such a block. Coding it brings a 1 MiB mail
	// of one attachment to 76% of its size for about 2 ms of CPU, and the
	// mail then needs 40 shards instead of 49 (spec 9.3). Bytes that look
	// random would only pay the 0.5 ms per MiB of trying.
	e, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(encoderWindow),
		zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithLowerEncoderMem(true), zstd.WithEncoderCRC(false),
		zstd.WithAllLitEntropyCompression(k == codeLiterals))
	if err != nil {
		return nil, fmt.Errorf("mail: zstd encoder: %w", err)
	}
	return e, nil
}

// literalsFor picks the encoder for a message from a sample of its body:
// more than 200 distinct byte values in its first 4 KiB look like random
// bytes (a binary part sent as is), which entropy coding cannot shrink;
// text and base64 use fewer than 100, UTF-8 text of most scripts under
// 160.
func literalsFor(sample []byte) encoderKind {
	sample = sample[:min(len(sample), 4<<10)]
	var seen [256]bool
	distinct := 0
	for _, b := range sample {
		if !seen[b] {
			seen[b] = true
			distinct++
		}
	}
	if distinct > 200 {
		return rawLiterals
	}
	return codeLiterals
}

// encoderWindow is the window this code compresses with: ample for mail,
// and well under what decoders accept.
const encoderWindow = 1 << 20

func (c *Codec) putEncoder(e *zstd.Encoder) { c.putEncoderOf(e, codeLiterals) }

func (c *Codec) putEncoderOf(e *zstd.Encoder, k encoderKind) {
	e.Reset(nil)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || len(c.zencs[k]) >= maxIdleCoders {
		e.Close()
		return
	}
	c.zencs[k] = append(c.zencs[k], e)
}

// decoder returns a zstd decoder reading from r, synchronous, that refuses
// a window over MaxWindow.
func (c *Codec) decoder(r io.Reader) (*zstd.Decoder, error) {
	c.mu.Lock()
	if n := len(c.zdecs); n > 0 {
		d := c.zdecs[n-1]
		c.zdecs = c.zdecs[:n-1]
		c.mu.Unlock()
		if err := d.Reset(r); err != nil {
			d.Close()
			return nil, fmt.Errorf("mail: zstd decoder: %w", err)
		}
		return d, nil
	}
	c.mu.Unlock()
	// A frame's content checksum, if it has one, is not checked: the
	// frame was authenticated as it was decrypted (spec 9.3).
	d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxWindow(MaxWindow), zstd.WithDecoderMaxMemory(MaxWindow), zstd.IgnoreChecksum(true))
	if err != nil {
		return nil, fmt.Errorf("mail: zstd decoder: %w", err)
	}
	return d, nil
}

func (c *Codec) putDecoder(d *zstd.Decoder) {
	if d.Reset(nil) != nil {
		d.Close()
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || len(c.zdecs) >= maxIdleCoders {
		d.Close()
		return
	}
	c.zdecs = append(c.zdecs, d)
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
