package mail

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/flowmail/flowmail/block"
)

// zeroNonce is the AEAD nonce of every body: each mail has a fresh random
// content key, so the key never meets a second plaintext (spec 9.3).
var zeroNonce [chacha20poly1305.NonceSize]byte

// coded is the body of a mail as data blocks: k data shards then m parity
// shards, each a whole data block (header and payload) inside one arena.
type coded struct {
	shardSize, k, m int
	arena           []byte   // from Codec.getBuf; blocks alias it
	blocks          [][]byte // k+m data blocks
}

// compress is spec 9.3 step 1. The result comes from Codec.getBuf when
// it fits one; the caller hands it back with putBuf.
func (c *Codec) compress(envelope []byte) []byte {
	// A zstd frame of incompressible input grows by about 3 bytes per
	// 128 KiB block plus a header; this bound always holds, so EncodeAll
	// never reallocates and the buffer can be reused.
	bound := len(envelope) + len(envelope)/(64<<10) + 512
	return c.zenc.EncodeAll(envelope, c.getBuf(bound)[:0])
}

// decompress undoes compress and stops at MaxDecompressed bytes of output
// (spec 9.3 step 1), whatever the frame claims.
func (c *Codec) decompress(z []byte) ([]byte, error) {
	n, h, err := zstdFrameLen(z)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecompress, err)
	}
	if n != len(z) {
		return nil, fmt.Errorf("%w: %d bytes follow the zstd frame (spec 9.3: one frame)", ErrDecompress, len(z)-n)
	}
	if !h.HasFCS {
		return decompressStream(z)
	}
	// The decoder stops at the capacity of its output: the size the frame
	// declares (ours always do).
	if h.FrameContentSize > MaxDecompressed {
		return nil, fmt.Errorf("%w: the body declares %d bytes, more than %d", ErrTooLarge, h.FrameContentSize, MaxDecompressed)
	}
	out, err := c.zdec.DecodeAll(z, make([]byte, 0, h.FrameContentSize))
	switch {
	case errors.Is(err, zstd.ErrDecoderSizeExceeded), errors.Is(err, zstd.ErrWindowSizeExceeded):
		return nil, fmt.Errorf("%w: the body decompresses to more than %d bytes", ErrTooLarge, MaxDecompressed)
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrDecompress, err)
	case len(out) > MaxDecompressed:
		return nil, fmt.Errorf("%w: the body decompresses to %d bytes, more than %d", ErrTooLarge, len(out), MaxDecompressed)
	}
	return out, nil
}

// decompressStream decodes a frame that does not declare its size (other
// encoders may stream) through a reader cut at the bound.
func decompressStream(z []byte) ([]byte, error) {
	d, err := zstd.NewReader(bytes.NewReader(z), zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxMemory(MaxDecompressed), zstd.WithDecoderMaxWindow(MaxDecompressed))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecompress, err)
	}
	defer d.Close()
	out, err := io.ReadAll(io.LimitReader(d, MaxDecompressed+1))
	switch {
	case len(out) > MaxDecompressed, errors.Is(err, zstd.ErrDecoderSizeExceeded), errors.Is(err, zstd.ErrWindowSizeExceeded):
		return nil, fmt.Errorf("%w: the body decompresses to more than %d bytes", ErrTooLarge, MaxDecompressed)
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrDecompress, err)
	}
	return out, nil
}

// zstdFrameLen returns the length of the zstd frame that starts z, by
// walking its block headers (RFC 8878 3.1.1): the library decodes
// concatenated frames without saying where the first one ended. Written
// by hand because no zstd library exposes frame boundaries.
func zstdFrameLen(z []byte) (int, zstd.Header, error) {
	var h zstd.Header
	if err := h.Decode(z); err != nil {
		return 0, h, fmt.Errorf("zstd frame header: %w", err)
	}
	if h.Skippable {
		return 0, h, errors.New("a skippable zstd frame, not a body")
	}
	checksum := z[4]&0x04 != 0 // Frame_Header_Descriptor, Content_Checksum_flag
	off := h.HeaderSize
	for last := false; !last; {
		if len(z)-off < 3 {
			return 0, h, errors.New("zstd frame cut short in a block header")
		}
		bh := int(z[off]) | int(z[off+1])<<8 | int(z[off+2])<<16
		off += 3
		last = bh&1 == 1
		size := bh >> 3
		switch (bh >> 1) & 3 {
		case 1: // RLE: one byte, repeated size times
			size = 1
		case 3:
			return 0, h, errors.New("zstd block of the reserved type")
		}
		if len(z)-off < size {
			return 0, h, errors.New("zstd frame cut short in a block")
		}
		off += size
	}
	if checksum {
		if len(z)-off < 4 {
			return 0, h, errors.New("zstd frame cut short in its checksum")
		}
		off += 4
	}
	return off, h, nil
}

// encode is spec 9.3 steps 2 to 4 and 9.4: pad Z, encrypt it under key,
// split it into k data shards and add m parity shards, each in a data
// block with header hdr. It calls encrypted, if set, between encrypting
// and coding.
func (c *Codec) encode(z []byte, key *[keySize]byte, hdr block.Header, encrypted func()) (*coded, error) {
	s, k, m, err := shardLayout(len(z))
	if err != nil {
		return nil, err
	}
	enc, err := c.coder(k, m)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.New(key[:])
	if err != nil {
		return nil, fmt.Errorf("mail: content key: %w", err)
	}
	// P = Z || zeros, sealed in place into C of k·S bytes.
	body := c.getBuf(k * s)
	defer c.putBuf(body)
	n := copy(body, z)
	clear(body[n : k*s-tagSize])
	aead.Seal(body[:0], zeroNonce[:], body[:k*s-tagSize], []byte(block.LabelMail))
	if encrypted != nil {
		encrypted()
	}

	hdr.Version, hdr.Type = block.Version, block.TypeData
	h := hdr.Size()
	out := &coded{shardSize: s, k: k, m: m, arena: c.getBuf((k + m) * (h + s)), blocks: make([][]byte, k+m)}
	shards := make([][]byte, k+m)
	for i := range out.blocks {
		b := out.arena[i*(h+s) : (i+1)*(h+s)]
		hdr.Append(b[:0])
		out.blocks[i], shards[i] = b, b[h:]
		if i < k {
			copy(shards[i], body[i*s:])
		}
	}
	if err := enc.Encode(shards); err != nil {
		c.putBuf(out.arena)
		return nil, fmt.Errorf("mail: Reed-Solomon encode: %w", err)
	}
	return out, nil
}

// decode is the inverse of encode for the manifest m: payloads holds the
// k+m shard payloads in coding order, nil for each one missing, at least k
// present and each exactly m.ShardSize bytes. It returns Z, aliasing a
// buffer from getBuf that the caller hands back with putBuf.
func (c *Codec) decode(man *Manifest, payloads [][]byte) (z, buf []byte, err error) {
	s, k := man.ShardSize, man.DataShards
	enc, err := c.coder(k, man.ParityShards)
	if err != nil {
		return nil, nil, err
	}
	body := c.getBuf(k * s)
	shards := make([][]byte, len(payloads))
	missing := false
	for i, p := range payloads {
		switch {
		case i >= k:
			shards[i] = p
		case p != nil:
			shards[i] = body[i*s : (i+1)*s]
			copy(shards[i], p)
		default:
			// Zero length with capacity: the coder rebuilds the shard in place.
			shards[i] = body[i*s : i*s : (i+1)*s]
			missing = true
		}
	}
	if missing {
		if err := enc.ReconstructData(shards); err != nil {
			c.putBuf(body)
			return nil, nil, fmt.Errorf("%w: Reed-Solomon: %v", ErrShardsMissing, err)
		}
		for i := range k {
			if &shards[i][0] != &body[i*s] {
				c.putBuf(body)
				return nil, nil, errors.New("mail: Reed-Solomon rebuilt a shard outside its buffer")
			}
		}
	}
	aead, err := chacha20poly1305.New(man.ContentKey[:])
	if err != nil {
		c.putBuf(body)
		return nil, nil, fmt.Errorf("mail: content key: %w", err)
	}
	p, err := aead.Open(body[:0], zeroNonce[:], body, []byte(block.LabelMail))
	if err != nil {
		c.putBuf(body)
		return nil, nil, fmt.Errorf("%w: the shards do not authenticate under the manifest's content key", ErrDecrypt)
	}
	for _, b := range p[man.CompressedLen:] {
		if b != 0 {
			c.putBuf(body)
			return nil, nil, fmt.Errorf("%w: the body's padding is not zero", ErrPadding)
		}
	}
	return p[:man.CompressedLen], body, nil
}
