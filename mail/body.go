package mail

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/flowmail/flowmail/block"
)

// groupNonce is the AEAD nonce of group g (spec 9.3 step 4): g as an
// 11-byte big-endian counter, then 1 for the last group and 0 for the
// others, so groups can be neither reordered, dropped at the end nor
// added.
func groupNonce(g int, last bool) (n [chacha20poly1305.NonceSize]byte) {
	binary.BigEndian.PutUint64(n[3:11], uint64(g))
	if last {
		n[11] = 1
	}
	return n
}

// sealGroup is spec 9.3 steps 3 and 4 and 9.4 for group g with layout gl:
// body holds the group's Z bytes, zeroed to gl.plain() bytes here, with
// room for the tag (len(body) = k·S); it is encrypted in place, split
// into k data shards and m parity shards are added, each in a data block
// with header hdr laid out in arena. It returns the blocks, which alias
// arena, and their IDs: workers goroutines hash them hashLanes at a time
// (SumMany's lanes), the data blocks while Reed-Solomon computes the
// parity, the parity blocks after.
func (c *Codec) sealGroup(gl GroupLayout, g int, last bool, key *[keySize]byte, body []byte, zbytes int, hdr block.Header, arena []byte, workers int) ([][]byte, []block.ID, error) {
	enc, err := c.coder(gl.Data, gl.Parity)
	if err != nil {
		return nil, nil, err
	}
	aead, err := chacha20poly1305.New(key[:])
	if err != nil {
		return nil, nil, fmt.Errorf("mail: content key: %w", err)
	}
	s := gl.ShardSize
	clear(body[zbytes:gl.plain()])
	nonce := groupNonce(g, last)
	aead.Seal(body[:0], nonce[:], body[:gl.plain()], []byte(block.LabelMail))

	hdr.Version, hdr.Type = block.Version, block.TypeData
	h := hdr.Size()
	blocks := make([][]byte, gl.Shards())
	shards := make([][]byte, gl.Shards())
	for i := range blocks {
		b := arena[i*(h+s) : (i+1)*(h+s)]
		hdr.Append(b[:0])
		blocks[i], shards[i] = b, b[h:]
		if i < gl.Data {
			copy(shards[i], body[i*s:])
		}
	}
	ids := make([]block.ID, len(blocks))
	var next atomic.Int64
	parity := make(chan struct{})
	hash := func() {
		for {
			lo := int(next.Add(hashLanes)) - hashLanes
			if lo >= len(blocks) {
				return
			}
			hi := min(lo+hashLanes, len(blocks))
			if hi > gl.Data {
				<-parity
			}
			block.SumMany(blocks[lo:hi], ids[lo:hi])
		}
	}
	var wg sync.WaitGroup
	for range max(workers, 1) - 1 {
		wg.Go(hash)
	}
	err = enc.Encode(shards)
	close(parity)
	hash()
	wg.Wait()
	if err != nil {
		return nil, nil, fmt.Errorf("mail: Reed-Solomon encode: %w", err)
	}
	return blocks, ids, nil
}

// openGroup is the inverse of sealGroup for group g of man: payloads
// holds the group's k+m shard payloads in coding order, nil for each one
// missing, at least k present and each exactly the shard size. It returns
// the group's Z bytes, aliasing body (from getBuf, k·S bytes), which the
// caller hands back with putBuf.
func (c *Codec) openGroup(man *Manifest, g int, payloads [][]byte) (z, body []byte, err error) {
	gl := man.Layout.Group(g)
	s, k := gl.ShardSize, gl.Data
	if len(payloads) != gl.Shards() {
		return nil, nil, fmt.Errorf("mail: %d shard payloads for group %d of %d shards", len(payloads), g, gl.Shards())
	}
	enc, err := c.coder(k, gl.Parity)
	if err != nil {
		return nil, nil, err
	}
	body = c.getBuf(k * s)
	fail := func(err error) ([]byte, []byte, error) {
		c.putBuf(body)
		return nil, nil, err
	}
	shards := make([][]byte, len(payloads))
	missing := false
	for i, p := range payloads {
		switch {
		case p != nil && len(p) != s:
			return fail(fmt.Errorf("mail: shard %d of group %d has %d bytes, not %d", i, g, len(p), s))
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
			return fail(fmt.Errorf("%w: group %d: Reed-Solomon: %v", ErrShardsMissing, g, err))
		}
		for i := range k {
			if &shards[i][0] != &body[i*s] {
				return fail(errors.New("mail: Reed-Solomon rebuilt a shard outside its buffer"))
			}
		}
	}
	aead, err := chacha20poly1305.New(man.ContentKey[:])
	if err != nil {
		return fail(fmt.Errorf("mail: content key: %w", err))
	}
	last := g == man.Layout.Groups-1
	nonce := groupNonce(g, last)
	p, err := aead.Open(body[:0], nonce[:], body, []byte(block.LabelMail))
	if err != nil {
		return fail(fmt.Errorf("%w: group %d does not authenticate under the manifest's content key", ErrDecrypt, g))
	}
	zb := man.Layout.zBytes(g)
	for _, b := range p[zb:] {
		if b != 0 {
			return fail(fmt.Errorf("%w: the body's padding is not zero", ErrPadding))
		}
	}
	return p[:zb], body, nil
}
