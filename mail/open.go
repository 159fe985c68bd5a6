package mail

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

// OpenIndex opens the index block blk, listed under id, for me, when it
// carries the full work (spec 6, 9.5): the checks of UnmaskIndex, then
// the manifest opens and is well formed. A block without the full work
// gives ErrProofOfWork (a grant claim is checked through UnmaskIndex and
// Index.CheckClaim instead); one sealed to someone else an error matching
// identity.ErrNotForMe.
func OpenIndex(me *identity.Identity, id block.ID, blk []byte) (*Manifest, error) {
	x, err := UnmaskIndex(me, id, blk)
	if err != nil {
		return nil, err
	}
	if !x.FullWork {
		return nil, fmt.Errorf("%w: index block %s is routable to %s but lacks its %d bits of work", ErrProofOfWork, id.Short(), me.Address(), me.Difficulty())
	}
	return x.Open()
}

// ShardPayload checks that blk is shard i (counted over all groups) of
// the mail man describes (spec 9.5): it hashes to the shard's ID, is a
// data block, and carries a payload of its group's shard size. It returns
// the payload, aliasing blk. A recipient treats a shard that fails as
// missing.
func ShardPayload(man *Manifest, i int, blk []byte) ([]byte, error) {
	if i < 0 || i >= len(man.ShardIDs) {
		return nil, fmt.Errorf("mail: shard %d of %d", i, len(man.ShardIDs))
	}
	id := man.ShardIDs[i]
	if got := block.Sum(blk); got != id {
		return nil, fmt.Errorf("block %s hashes to %s", id.Short(), got.Short())
	}
	d, err := block.ParseData(blk)
	if err != nil {
		return nil, err
	}
	size := man.Layout.Group(min(i/fullGroup.Shards(), man.Layout.Groups-1)).ShardSize
	if len(d.Payload) != size {
		return nil, fmt.Errorf("payload of %d bytes, the manifest says %d", len(d.Payload), size)
	}
	return d.Payload, nil
}

// GroupPayloads checks blocks, group g's shards in coding order (nil
// where missing), as ShardPayload does, hashing them side by side, and
// returns their payloads: nil for each block missing or failing.
func GroupPayloads(man *Manifest, g int, blocks [][]byte) [][]byte {
	first := man.Layout.FirstShard(g)
	have := make([][]byte, 0, len(blocks))
	at := make([]int, 0, len(blocks))
	for i, b := range blocks {
		if b != nil && first+i < len(man.ShardIDs) {
			have, at = append(have, b), append(at, i)
		}
	}
	ids := make([]block.ID, len(have))
	sumBlocks(have, ids, runtime.GOMAXPROCS(0))
	out := make([][]byte, len(blocks))
	size := man.Layout.Group(g).ShardSize
	for j, b := range have {
		i := at[j]
		if ids[j] != man.ShardIDs[first+i] {
			continue
		}
		if d, err := block.ParseData(b); err == nil && len(d.Payload) == size {
			out[i] = d.Payload
		}
	}
	return out
}

// Shards gives the shard payloads of group g of the mail being opened, in
// coding order, nil where missing: at least the group's k present, each
// checked with ShardPayload. Groups are asked for in order, each once.
type Shards func(ctx context.Context, g int) ([][]byte, error)

// Opened is what OpenBody found: the verified envelope and its signer.
type Opened struct {
	Envelope *Envelope
	// Sender is the envelope's signer, verified, owned by the envelope's
	// from address (Sender.Owner, which the From header names).
	Sender *identity.PublicKey
	Head   []byte // the message's first bytes (up to MaxHeaderSize): its header section
}

// Rotated reports whether the sender signed with a later generation's
// pubkey block than its address's own: then the envelope alone does not
// show that the key is the address's, and the caller MUST check it
// against the sender's key log before delivering (spec 9.2, 15.5).
func (o *Opened) Rotated() bool { return o.Sender.ID != o.Sender.Owner }

// OpenBody opens the body of the mail man describes for me, group by
// group as shards gives them: it rebuilds, decrypts and decompresses each
// group, checks the envelope's head (the sender's pubkey block, me among
// the recipients, and, with a non-zero now, that it was signed after any
// block still alive was stored), streams the message into out, and
// verifies the signature and the From header at the end (spec 9.2 to
// 9.4). It holds one group at a time. When it fails, out has received
// bytes that must not be delivered.
func (c *Codec) OpenBody(ctx context.Context, me *identity.Identity, man *Manifest, shards Shards, out io.Writer, now time.Time) (*Opened, error) {
	gr := &groupReader{c: c, ctx: ctx, man: man, shards: shards}
	defer gr.release()
	zr, err := c.decoder(gr)
	if err != nil {
		return nil, err
	}
	defer c.putDecoder(zr)
	// fail prefers what went wrong below the decoder (missing shards, a
	// group that does not decrypt) to the decoder's view of it.
	fail := func(err error) (*Opened, error) {
		if gr.err != nil {
			return nil, gr.err
		}
		return nil, err
	}
	e, err := readHead(zr)
	if err != nil {
		return fail(err)
	}
	sender, err := e.verifyHead(me.ID())
	if err != nil {
		return fail(err)
	}
	if !now.IsZero() && e.Time.Before(now.Add(-ReplayWindow)) {
		return fail(fmt.Errorf("%w: signed on %s, before any block still alive was stored: a replay", ErrStale, e.Time.UTC().Format(time.DateOnly)))
	}
	hbuf := c.getBuf(hashBuffer)
	defer c.putBuf(hbuf)
	hasher := newMessageHasher(hbuf)
	head := &headCapture{limit: int(min(e.MessageLen, MaxHeaderSize))}
	n, err, outErr := c.copyMessage(zr, e.MessageLen, hasher, head, out)
	switch {
	case outErr != nil:
		return nil, fmt.Errorf("mail: writing the message out: %w", outErr)
	case err != nil && gr.err == nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF):
		return nil, fmt.Errorf("%w: %v", ErrDecompress, err)
	case err != nil && gr.err != nil:
		return fail(err)
	}
	if n < e.MessageLen {
		return fail(fmt.Errorf("%w: the envelope ends after %d of its %d message bytes", ErrTruncated, n, e.MessageLen))
	}
	if _, err := io.ReadFull(zr, e.Signature[:]); err != nil {
		return fail(fmt.Errorf("%w: the envelope ends inside its signature", ErrTruncated))
	}
	var extra [1]byte
	switch k, err := io.ReadFull(zr, extra[:]); {
	case k > 0:
		return fail(fmt.Errorf("%w: bytes after the envelope's signature", ErrTrailing))
	case err != io.EOF:
		return fail(fmt.Errorf("%w: after the signature: %v", ErrDecompress, err))
	}
	if !gr.done() {
		return fail(fmt.Errorf("%w: the envelope ends before the compressed body does", ErrTrailing))
	}
	e.MessageHash = hasher.Sum()
	if err := e.verifySignature(sender); err != nil {
		return nil, err
	}
	if err := checkHeader(head.b, e.MessageLen, e.From); err != nil {
		return nil, err
	}
	return &Opened{Envelope: e, Sender: sender, Head: head.b}, nil
}

// copyMessage copies the n message bytes from r into head and out, and
// hashes them: in another goroutine, a piece behind, when there is a core
// to spare. It returns how many bytes it copied, the error of reading r,
// and that of writing out, kept apart.
func (c *Codec) copyMessage(r io.Reader, n int64, hasher *messageHasher, head *headCapture, out io.Writer) (copied int64, readErr, outErr error) {
	bufs := [2][]byte{c.getBuf(readChunk), c.getBuf(readChunk)}
	defer c.putBuf(bufs[0])
	defer c.putBuf(bufs[1])
	async := runtime.GOMAXPROCS(0) > 1
	var hashing sync.WaitGroup // the hash of the other buffer
	defer hashing.Wait()
	for i := 0; copied < n; i ^= 1 {
		b := bufs[i][:min(int64(readChunk), n-copied)]
		k, err := io.ReadFull(r, b)
		b = b[:k]
		hashing.Wait()
		if k > 0 {
			if async {
				hashing.Add(1)
				go func() {
					defer hashing.Done()
					hasher.Write(b)
				}()
			} else {
				hasher.Write(b)
			}
			head.Write(b)
			if _, werr := out.Write(b); werr != nil {
				return copied, nil, werr
			}
			copied += int64(k)
		}
		if err != nil {
			return copied, err, nil
		}
	}
	return copied, nil, nil
}

// headCapture keeps the first limit bytes written to it.
type headCapture struct {
	b     []byte
	limit int
}

func (h *headCapture) Write(p []byte) (int, error) {
	if room := h.limit - len(h.b); room > 0 {
		h.b = append(h.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// groupReader yields Z, the compressed envelope, group by group: it asks
// for each group's shards when the decoder has read the one before, and
// rebuilds and decrypts it.
type groupReader struct {
	c      *Codec
	ctx    context.Context
	man    *Manifest
	shards Shards

	g    int    // the next group to get
	z    []byte // unread Z bytes of the current group
	body []byte // the buffer z aliases
	err  error  // what stopped it, other than the end
}

func (r *groupReader) Read(p []byte) (int, error) {
	for len(r.z) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.g == r.man.Layout.Groups {
			return 0, io.EOF
		}
		r.next()
	}
	n := copy(p, r.z)
	r.z = r.z[n:]
	return n, nil
}

// next rebuilds the next group, or sets err.
func (r *groupReader) next() {
	r.release()
	if err := r.ctx.Err(); err != nil {
		r.err = err
		return
	}
	payloads, err := r.shards(r.ctx, r.g)
	if err != nil {
		r.err = err
		return
	}
	z, body, err := r.c.openGroup(r.man, r.g, payloads)
	if err != nil {
		r.err = err
		return
	}
	r.z, r.body = z, body
	r.g++
}

// done reports whether every group was read to its end.
func (r *groupReader) done() bool { return r.err == nil && r.g == r.man.Layout.Groups && len(r.z) == 0 }

func (r *groupReader) release() {
	if r.body != nil {
		r.c.putBuf(r.body)
		r.body, r.z = nil, nil
	}
}
