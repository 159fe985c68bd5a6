package mail

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/pow"
)

// Phase names a step of building or storing a mail, for progress reports.
type Phase uint8

// Phases in the order they happen. Encoding and storing take turns, one
// group at a time, when the data blocks are stored as they are built.
const (
	PhaseEncode Phase = iota + 1 // sign, compress, encrypt and code the message
	PhaseGrind                   // seal the manifest and grind the index block of one recipient
	PhaseStore                   // store the blocks (reported by package delivery)
)

func (p Phase) String() string {
	switch p {
	case PhaseEncode:
		return "encode"
	case PhaseGrind:
		return "grind"
	case PhaseStore:
		return "store"
	}
	return fmt.Sprintf("phase(%d)", uint8(p))
}

// Progress is reported while a mail is built and sent. PhaseEncode
// reports when it starts (Done 0), after each group and when it ends
// (Done == Total); PhaseGrind when each recipient's grinding starts, with
// the grinder's figures in between, and when it ends; PhaseStore (package
// delivery) as blocks are stored.
type Progress struct {
	Phase      Phase
	Recipient  int // for PhaseGrind, the index into BuildInput.Recipients; else -1
	Recipients int
	Done       int64 // message bytes (encode, store), recipients ground (grind)
	Total      int64
	PoW        pow.Progress // PhaseGrind only
}

// BuildInput is one mail to build.
type BuildInput struct {
	Sender     *identity.Identity
	Recipients []*identity.PublicKey // verified pubkey blocks, no duplicates
	Message    io.Reader             // RFC 5322 with CRLF line ends; From must name Sender
	Size       int64                 // the bytes Message yields, exactly
	Now        time.Time             // signing time
	Rand       io.Reader             // keys, message ID, deletion preimages; nil means crypto/rand
	Lifetime   time.Duration         // how long the blocks are to be stored; 0 means block.MaxLifetime
	// Locator, if set, adds a locator block (spec 21.2) listing the
	// shard IDs, named in clear by every index block, so a recipient's
	// delegate can hold the mail without opening it. It is given to
	// BuildOptions.Data (as group Layout.Groups) or put in Built.Data
	// after the shards, so it is stored before any index block.
	Locator bool
	// Grants, if set, holds a grant claim per recipient (in the order of
	// Recipients; nil for none): that recipient's index block is ground
	// only to its public prefix and claims the grant (spec 17.3).
	Grants []*GrantClaim
}

// BuildOptions tune Build.
type BuildOptions struct {
	// Workers grind in parallel; 0 means GOMAXPROCS.
	Workers int
	// Progress, if set, receives reports from one goroutine at a time.
	Progress func(Progress)
	// ProgressInterval between grinding reports; 0 means 250 ms.
	ProgressInterval time.Duration
	// Data, if set, receives the data blocks of each group as soon as
	// they are coded (k data then m parity blocks, in coding order), and
	// Build waits for it: the bytes are reused for the next group once it
	// returns. This is how a mail far larger than memory is built. When
	// Data is nil, Built.Data holds every data block.
	Data func(ctx context.Context, g int, blocks []Block) error
}

// Block is one block of a built mail.
type Block struct {
	ID        block.ID
	Bytes     []byte
	Recipient block.ID // index blocks only: whose it is
}

// Built is a mail ready to store: data blocks stored once for all
// recipients, and one index block per recipient.
type Built struct {
	MessageID [messageIDSize]byte
	Layout    Layout
	ShardIDs  []block.ID // of every data block, group by group, in coding order
	Locator   block.ID   // of the locator block, when BuildInput.Locator
	Data      []Block    // every data block, unless BuildOptions.Data took them
	Index     []Block    // in the order of BuildInput.Recipients
	Lifetime  time.Duration
	Size      int64 // the message's bytes, BuildInput.Size

	codec  *Codec
	arenas [][]byte
}

// Release hands the data blocks' memory back to the Codec for the next
// mail. The Built must not be used afterwards.
func (b *Built) Release() {
	if b.codec != nil {
		for _, a := range b.arenas {
			b.codec.putBuf(a)
		}
		b.codec, b.arenas, b.Data = nil, nil, nil
	}
}

// Build turns a message into blocks (spec 9.2 to 9.5): it compresses the
// envelope around the message, signs it over the message hash, encrypts
// and erasure-codes it group by group into data blocks, and seals and
// grinds one index block per recipient to the recipient's difficulty. It
// reads the message once, in pieces, and holds at most one group of it.
// It checks the message's From header first, so a mail that recipients
// would reject is never built.
func (c *Codec) Build(ctx context.Context, in BuildInput, opt BuildOptions) (*Built, error) {
	switch {
	case in.Sender == nil:
		return nil, errors.New("mail: build: no sender")
	case in.Message == nil:
		return nil, errors.New("mail: build: no message")
	case in.Now.Unix() <= 0:
		return nil, errors.New("mail: build: no signing time")
	}
	if in.Lifetime == 0 {
		in.Lifetime = block.MaxLifetime
	}
	if in.Lifetime < time.Second || in.Lifetime > block.MaxLifetime {
		return nil, fmt.Errorf("mail: build: lifetime %v outside 1s to %v", in.Lifetime, block.MaxLifetime)
	}
	if in.Rand == nil {
		in.Rand = rand.Reader
	}
	if err := checkMessageLen(in.Size); err != nil {
		return nil, err
	}
	env := &Envelope{Time: time.Unix(in.Now.Unix(), 0), From: in.Sender.ID(), Sender: in.Sender.Public().Block, MessageLen: in.Size}
	for _, r := range in.Recipients {
		if r == nil {
			return nil, errors.New("mail: build: nil recipient")
		}
		env.Recipients = append(env.Recipients, r.Owner)
	}
	if err := checkRecipients(env.Recipients); err != nil {
		return nil, err
	}
	if len(in.Grants) > len(in.Recipients) {
		return nil, fmt.Errorf("mail: build: %d grant claims for %d recipients", len(in.Grants), len(in.Recipients))
	}
	// The header is read into the start of the buffer the rest of the
	// message goes through, so the message hash takes whole batches of
	// chunks straight from it.
	buf := c.getBuf(readChunk)
	defer c.putBuf(buf)
	head := buf[:min(in.Size, MaxHeaderSize)]
	if n, err := io.ReadFull(in.Message, head); errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: the message ended after %d of its %d bytes", ErrMessageSize, n, in.Size)
	} else if err != nil {
		return nil, fmt.Errorf("mail: build: reading the message: %w", err)
	}
	if err := checkHeader(head, in.Size, in.Sender.ID()); err != nil {
		return nil, err
	}
	keys, err := readKeys(in.Rand, len(in.Recipients), env.MessageID[:])
	if err != nil {
		return nil, err
	}
	report := progressFunc(opt.Progress, len(in.Recipients))
	// The recipients' HPKE encapsulations, beside the body.
	sealers := make([]sealer, len(in.Recipients))
	var encaps sync.WaitGroup
	defer encaps.Wait()
	encaps.Go(func() {
		for i, r := range in.Recipients {
			sealers[i] = newSealer(r)
		}
	})

	hdr := block.Header{}
	if keys.dataDeletion != nil {
		hdr.HasDeletion, hdr.DeletionHash = true, block.DeletionHash(*keys.dataDeletion)
	}
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	out := &Built{MessageID: env.MessageID, Lifetime: in.Lifetime, Size: in.Size, codec: c}
	gw := &groupWriter{c: c, ctx: ctx, key: &keys.content, hdr: hdr, sink: opt.Data, out: out, workers: workers}
	// Room for the whole envelope if it does not compress, so the group
	// buffer is not regrown on the way.
	gw.grow(int(min(in.Size+int64(len(env.AppendHead(nil)))+block.SignatureSize+in.Size/64+1024, fullGroupPlain)))
	fail := func(err error) (*Built, error) {
		gw.release()
		out.Release()
		return nil, err
	}
	gw.progress = func() { report(Progress{Phase: PhaseEncode, Done: gw.read, Total: in.Size}) }
	gw.progress()
	if err := c.encodeEnvelope(gw, env, buf, len(head), in); err != nil {
		return fail(err)
	}
	gw.release()
	report(Progress{Phase: PhaseEncode, Done: in.Size, Total: in.Size})

	l, err := LayoutFor(gw.zlen)
	if err != nil {
		return fail(err)
	}
	out.Layout = l
	man := Manifest{ContentKey: keys.content, Layout: l, ShardIDs: out.ShardIDs}
	if keys.dataDeletion != nil {
		man.HasDataDeletion, man.DataDeletion = true, *keys.dataDeletion
	}
	var locator *block.ID
	if in.Locator {
		lb := LocatorBlock(out.ShardIDs)
		out.Locator = block.Sum(lb)
		locator = &out.Locator
		lblk := []Block{{ID: out.Locator, Bytes: lb}}
		if opt.Data != nil {
			if err := opt.Data(ctx, l.Groups, lblk); err != nil {
				return fail(err)
			}
		} else {
			out.Data = append(out.Data, lblk...)
		}
	}
	encaps.Wait()
	for i, r := range in.Recipients {
		man.IndexDeletion = keys.indexDeletion[i]
		report(Progress{Phase: PhaseGrind, Recipient: i, Done: int64(i), Total: int64(len(in.Recipients))})
		var claim *GrantClaim
		if i < len(in.Grants) {
			claim = in.Grants[i]
		}
		blk, err := sealIndex(ctx, &man, r, sealers[i], claim, locator, workers, opt.ProgressInterval, func(p pow.Progress) {
			report(Progress{Phase: PhaseGrind, Recipient: i, Done: int64(i), Total: int64(len(in.Recipients)), PoW: p})
		})
		if err != nil {
			return fail(err)
		}
		out.Index = append(out.Index, Block{ID: block.Sum(blk), Bytes: blk, Recipient: r.Owner})
		report(Progress{Phase: PhaseGrind, Recipient: i, Done: int64(i + 1), Total: int64(len(in.Recipients))})
	}
	return out, nil
}

// encodeEnvelope streams the envelope (spec 9.2) through zstd into gw:
// the head, the message (its first have bytes already in buf, the rest
// read from in.Message through buf), and the signature over the head and
// the message hash.
func (c *Codec) encodeEnvelope(gw *groupWriter, env *Envelope, buf []byte, have int, in BuildInput) error {
	// The first chunk is read before the encoder is picked: whether the
	// message past the bytes read for the header check looks random
	// decides how literals are coded (a message shorter than those codes
	// them: a small mail's literals cost little).
	read := func() (int, error) {
		want := have + int(min(int64(len(buf)-have), in.Size-gw.read-int64(have)))
		return io.ReadFull(in.Message, buf[have:want])
	}
	n, rerr := read()
	kind := literalsFor(buf[have : have+n])
	zw, err := c.encoderOf(gw, kind)
	if err != nil {
		return err
	}
	defer c.putEncoderOf(zw, kind)
	hbuf := c.getBuf(hashBuffer)
	defer c.putBuf(hbuf)
	hasher := newMessageHasher(hbuf)
	if _, err := zw.Write(env.AppendHead(nil)); err != nil {
		return err
	}
	// write hashes p beside compressing (and coding) it when there is a
	// core to spare: both only read p.
	write := func(p []byte) error {
		var wg sync.WaitGroup
		if gw.workers > 1 && len(p) >= HashChunk {
			wg.Add(1)
			go func() {
				defer wg.Done()
				hasher.Write(p)
			}()
		} else {
			hasher.Write(p)
		}
		_, err := zw.Write(p)
		wg.Wait()
		if err != nil {
			return err
		}
		gw.read += int64(len(p))
		return nil
	}
	for first := true; first || gw.read < in.Size; first = false {
		if !first {
			if err := gw.ctx.Err(); err != nil {
				return err
			}
			n, rerr = read()
		}
		if n += have; n > 0 {
			if err := write(buf[:n]); err != nil {
				return err
			}
		}
		have = 0
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: the message ended after %d of its %d bytes", ErrMessageSize, gw.read, in.Size)
		}
		if rerr != nil {
			return fmt.Errorf("mail: build: reading the message: %w", rerr)
		}
	}
	if n, _ := in.Message.Read(buf[:1]); n > 0 {
		return fmt.Errorf("%w: the message is longer than its %d bytes", ErrMessageSize, in.Size)
	}
	env.MessageHash = hasher.Sum()
	env.sign(in.Sender)
	if _, err := zw.Write(env.Signature[:]); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return gw.finish()
}

// readChunk is how much of the message Build reads at a time: whole
// batches of hash chunks, which the message hash takes without copying.
const readChunk = hashLanes * HashChunk

// checkHeader checks the first bytes of a message of size bytes: its
// header section ends within them (spec 9.1) and its From header names
// signer.
func checkHeader(head []byte, size int64, signer block.ID) error {
	if int64(len(head)) < size && !headerEnds(head) {
		return fmt.Errorf("%w: no end of the header section in the first %d bytes", ErrHeaderSize, MaxHeaderSize)
	}
	return CheckFrom(head, signer)
}

// headerEnds reports whether b holds the empty line that ends a header
// section.
func headerEnds(b []byte) bool {
	return bytes.HasPrefix(b, []byte("\r\n")) || bytes.HasPrefix(b, []byte("\n")) ||
		bytes.Contains(b, []byte("\r\n\r\n")) || bytes.Contains(b, []byte("\n\n"))
}

// groupWriter takes Z, the compressed envelope, as the encoder writes it
// and cuts it into groups (spec 9.3): each full group is sealed and coded
// as soon as a byte beyond it arrives, the last one by finish.
type groupWriter struct {
	c    *Codec
	ctx  context.Context
	key  *[keySize]byte
	hdr  block.Header
	sink func(ctx context.Context, g int, blocks []Block) error
	out  *Built

	workers  int    // goroutines to hash with
	body     []byte // Z bytes of the current group, in a buffer from getBuf with room for k·S
	arena    []byte // the blocks of the group being handed to sink, reused
	g        int    // the current group
	zlen     int64  // Z bytes so far
	read     int64  // message bytes read so far, for progress
	progress func()
}

func (w *groupWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if len(w.body) == fullGroupPlain {
			// More follows: the group in hand is a full one.
			if err := w.flush(fullGroup, false); err != nil {
				return n - len(p), err
			}
		}
		take := min(len(p), fullGroupPlain-len(w.body))
		w.grow(len(w.body) + take)
		w.body = append(w.body, p[:take]...)
		w.zlen += int64(take)
		p = p[take:]
	}
	return n, nil
}

// grow makes room for n bytes of Z and the padding and tag of any layout
// that can hold them.
func (w *groupWriter) grow(n int) {
	need := n + tagSize
	if n > fullGroupPlain/2 {
		need = fullGroup.Data * fullGroup.ShardSize
	}
	if cap(w.body) >= need {
		return
	}
	nb := w.c.getBuf(max(need, 2*cap(w.body)))[:len(w.body)]
	copy(nb, w.body)
	if w.body != nil {
		w.c.putBuf(w.body)
	}
	w.body = nb
}

// finish codes the last group.
func (w *groupWriter) finish() error {
	if len(w.body) == 0 {
		return errors.New("mail: build: empty compressed envelope")
	}
	gl := lastGroup(len(w.body))
	w.grow(gl.Data * gl.ShardSize)
	return w.flush(gl, true)
}

// flush seals and codes the group in hand with layout gl and hands its
// blocks on.
func (w *groupWriter) flush(gl GroupLayout, last bool) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	zb := len(w.body)
	body := w.body[:gl.Data*gl.ShardSize]
	size := gl.Shards() * (w.hdr.Size() + gl.ShardSize)
	if w.arena == nil || cap(w.arena) < size {
		if w.arena != nil {
			w.c.putBuf(w.arena)
		}
		w.arena = w.c.getBuf(size)
	}
	blocks, ids, err := w.c.sealGroup(gl, w.g, last, w.key, body, zb, w.hdr, w.arena[:size], w.workers)
	if err != nil {
		return err
	}
	w.out.ShardIDs = append(w.out.ShardIDs, ids...)
	bs := make([]Block, len(blocks))
	for i := range blocks {
		bs[i] = Block{ID: ids[i], Bytes: blocks[i]}
	}
	if w.sink != nil {
		if err := w.sink(w.ctx, w.g, bs); err != nil {
			return err
		}
	} else {
		// Kept for Built.Data: the arena is the Built's now.
		w.out.Data = append(w.out.Data, bs...)
		w.out.arenas = append(w.out.arenas, w.arena)
		w.arena = nil
	}
	w.body = w.body[:0]
	w.g++
	w.progress()
	return nil
}

// release hands the writer's buffers back.
func (w *groupWriter) release() {
	if w.body != nil {
		w.c.putBuf(w.body)
		w.body = nil
	}
	if w.arena != nil {
		w.c.putBuf(w.arena)
		w.arena = nil
	}
}

// mailKeys are the secrets of one mail.
type mailKeys struct {
	content       [keySize]byte
	dataDeletion  *[keySize]byte // nil with several recipients
	indexDeletion [][keySize]byte
}

// readKeys reads every random value of a mail from rnd in a fixed order
// (message_id, content key, the data deletion preimage when there is one
// recipient, an index deletion preimage per recipient), so a deterministic
// rnd gives a reproducible mail.
func readKeys(rnd io.Reader, recipients int, messageID []byte) (*mailKeys, error) {
	k := &mailKeys{indexDeletion: make([][keySize]byte, recipients)}
	fill := [][]byte{messageID, k.content[:]}
	if recipients == 1 {
		// With several recipients one of them must not be able to delete
		// the others' copy (spec 9.4).
		k.dataDeletion = new([keySize]byte)
		fill = append(fill, k.dataDeletion[:])
	}
	for i := range k.indexDeletion {
		fill = append(fill, k.indexDeletion[i][:])
	}
	for _, f := range fill {
		if _, err := io.ReadFull(rnd, f); err != nil {
			return nil, fmt.Errorf("mail: build: reading randomness: %w", err)
		}
	}
	return k, nil
}

func progressFunc(fn func(Progress), recipients int) func(Progress) {
	return func(p Progress) {
		if fn != nil {
			p.Recipients = recipients
			if p.Phase != PhaseGrind {
				p.Recipient = -1
			}
			fn(p)
		}
	}
}

// sealIndex seals the manifest to r and grinds the index block's nonce
// (spec 6): until its ID carries r's full work, or, under a grant claim,
// r's public prefix only (spec 17.3).
func sealIndex(ctx context.Context, man *Manifest, r *identity.PublicKey, hs sealer, claim *GrantClaim, locator *block.ID, workers int, interval time.Duration, progress func(pow.Progress)) ([]byte, error) {
	sealed, target, bits, err := sealManifestTo(man, r, claim, hs)
	if err != nil {
		return nil, err
	}
	x := block.Index{
		Header: block.Header{HasDeletion: true, DeletionHash: block.DeletionHash(man.IndexDeletion)},
		Sealed: sealed,
	}
	if locator != nil {
		x.Header.HasLocator, x.Locator = true, *locator
	}
	blk := x.Encode()
	if _, err := pow.Solve(ctx, blk, target, bits, pow.Options{Workers: workers, Progress: progress, Interval: interval}); err != nil {
		return nil, fmt.Errorf("mail: grinding the index block for %s (difficulty %d): %w", r.Address(), bits, err)
	}
	return blk, nil
}
