package mail

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/pow"
)

// Phase names a step of building or storing a mail, for progress reports.
type Phase uint8

// Phases in the order they happen.
const (
	PhaseSign     Phase = iota + 1 // sign the envelope
	PhaseCompress                  // zstd
	PhaseEncrypt                   // pad and encrypt
	PhaseEncode                    // Reed-Solomon and data block IDs
	PhaseGrind                     // seal the manifest and grind the index block of one recipient
	PhaseStore                     // store the blocks (reported by package delivery)
)

func (p Phase) String() string {
	switch p {
	case PhaseSign:
		return "sign"
	case PhaseCompress:
		return "compress"
	case PhaseEncrypt:
		return "encrypt"
	case PhaseEncode:
		return "encode"
	case PhaseGrind:
		return "grind"
	case PhaseStore:
		return "store"
	}
	return fmt.Sprintf("phase(%d)", uint8(p))
}

// Progress is reported while a mail is built and sent. Each phase reports
// once when it starts (Done 0) and once when it ends (Done == Total);
// PhaseGrind reports in between with the grinder's figures and
// PhaseStore after each block.
type Progress struct {
	Phase      Phase
	Recipient  int // for PhaseGrind, the index into BuildInput.Recipients; else -1
	Recipients int
	Done       int64 // bytes (sign to encode), recipients ground (grind), blocks (store)
	Total      int64
	PoW        pow.Progress // PhaseGrind only
}

// BuildInput is one mail to build.
type BuildInput struct {
	Sender     *identity.Identity
	Recipients []*identity.PublicKey // verified pubkey blocks, no duplicates
	Message    []byte                // RFC 5322; From must name Sender
	Now        time.Time             // signing time
	Rand       io.Reader             // keys, IDs, deletion preimages; nil means crypto/rand
	Lifetime   time.Duration         // how long the blocks are to be stored; 0 means block.MaxLifetime
}

// BuildOptions tune Build.
type BuildOptions struct {
	// Workers grind in parallel; 0 means GOMAXPROCS.
	Workers int
	// Progress, if set, receives reports from one goroutine at a time.
	Progress func(Progress)
	// ProgressInterval between grinding reports; 0 means 250 ms.
	ProgressInterval time.Duration
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
	// Data holds k data then m parity shards, in coding order. With k = 1
	// the parity block repeats the data block byte for byte (a code of
	// dimension 1 is a repetition code), so both have one ID, to be
	// stored once.
	Data         []Block
	Index        []Block // in the order of BuildInput.Recipients
	Lifetime     time.Duration
	ShardSize    int
	DataShards   int
	ParityShards int

	codec *Codec
	arena []byte
}

// Release hands the data blocks' memory back to the Codec for the next
// mail. The Built must not be used afterwards.
func (b *Built) Release() {
	if b.codec != nil {
		b.codec.putBuf(b.arena)
		b.codec, b.arena, b.Data = nil, nil, nil
	}
}

// Build turns a message into blocks (spec 9.2 to 9.5): it signs the
// envelope, compresses, pads, encrypts, erasure-codes into data blocks,
// and seals and grinds one index block per recipient to the recipient's
// difficulty. It checks the message's From header first, so a mail that
// recipients would reject is never built.
func (c *Codec) Build(ctx context.Context, in BuildInput, opt BuildOptions) (*Built, error) {
	if in.Sender == nil {
		return nil, errors.New("mail: build: no sender")
	}
	if in.Now.Unix() <= 0 {
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
	if err := CheckFrom(in.Message, in.Sender.ID()); err != nil {
		return nil, err
	}
	env := &Envelope{Time: time.Unix(in.Now.Unix(), 0), Message: in.Message}
	for _, r := range in.Recipients {
		if r == nil {
			return nil, errors.New("mail: build: nil recipient")
		}
		env.Recipients = append(env.Recipients, r.ID)
	}
	if err := checkRecipients(env.Recipients); err != nil {
		return nil, err
	}
	keys, err := readKeys(in.Rand, len(in.Recipients), env.MessageID[:])
	if err != nil {
		return nil, err
	}
	size := int64(len(in.Message))
	report := progressFunc(opt.Progress, len(in.Recipients))
	report(Progress{Phase: PhaseSign, Total: size})
	envelope, err := signEnvelope(env, in.Sender)
	if err != nil {
		return nil, err
	}
	report(Progress{Phase: PhaseSign, Done: size, Total: size})
	b, err := c.seal(ctx, envelope, in.Recipients, keys, size, opt)
	if err != nil {
		return nil, err
	}
	b.MessageID, b.Lifetime = env.MessageID, in.Lifetime
	return b, nil
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

// seal is Build after signing: it compresses, encrypts and codes the
// envelope bytes, and seals and grinds an index block to each of sealTo.
func (c *Codec) seal(ctx context.Context, envelope []byte, sealTo []*identity.PublicKey, keys *mailKeys, size int64, opt BuildOptions) (*Built, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	report := progressFunc(opt.Progress, len(sealTo))
	report(Progress{Phase: PhaseCompress, Total: size})
	z := c.compress(envelope)
	defer c.putBuf(z)
	report(Progress{Phase: PhaseCompress, Done: size, Total: size})

	hdr := block.Header{}
	if keys.dataDeletion != nil {
		hdr.HasDeletion, hdr.DeletionHash = true, block.DeletionHash(*keys.dataDeletion)
	}
	report(Progress{Phase: PhaseEncrypt, Total: size})
	body, err := c.encode(z, &keys.content, hdr, func() {
		report(Progress{Phase: PhaseEncrypt, Done: size, Total: size})
		report(Progress{Phase: PhaseEncode, Total: size})
	})
	if err != nil {
		return nil, err
	}
	out := &Built{
		ShardSize: body.shardSize, DataShards: body.k, ParityShards: body.m,
		codec: c, arena: body.arena,
		Data:  make([]Block, len(body.blocks)),
		Index: make([]Block, len(sealTo)),
	}
	ids := make([]block.ID, len(body.blocks))
	block.SumMany(body.blocks, ids)
	for i, b := range body.blocks {
		out.Data[i] = Block{ID: ids[i], Bytes: b}
	}
	report(Progress{Phase: PhaseEncode, Done: size, Total: size})
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}

	man := Manifest{
		ContentKey: keys.content, CompressedLen: len(z),
		ShardSize: body.shardSize, DataShards: body.k, ParityShards: body.m,
		ShardIDs: make([]block.ID, len(out.Data)),
	}
	if keys.dataDeletion != nil {
		man.HasDataDeletion, man.DataDeletion = true, *keys.dataDeletion
	}
	for i, d := range out.Data {
		man.ShardIDs[i] = d.ID
	}
	for i, r := range sealTo {
		man.IndexDeletion = keys.indexDeletion[i]
		blk, err := sealIndex(ctx, &man, r, workers, opt.ProgressInterval, func(p pow.Progress) {
			report(Progress{Phase: PhaseGrind, Recipient: i, Done: int64(i), Total: int64(len(sealTo)), PoW: p})
		})
		if err != nil {
			out.Release()
			return nil, err
		}
		out.Index[i] = Block{ID: block.Sum(blk), Bytes: blk, Recipient: r.ID}
		report(Progress{Phase: PhaseGrind, Recipient: i, Done: int64(i + 1), Total: int64(len(sealTo))})
	}
	return out, nil
}

// sealIndex seals the manifest to r and grinds the index block's nonce
// until its ID shares r.Difficulty leading bits with r's address (spec 6).
func sealIndex(ctx context.Context, man *Manifest, r *identity.PublicKey, workers int, interval time.Duration, progress func(pow.Progress)) ([]byte, error) {
	sealed, err := r.Seal(block.LabelIndex, man.Encode())
	if err != nil {
		return nil, fmt.Errorf("mail: sealing the manifest to %s: %w", r.Address(), err)
	}
	blk := block.Index{
		Header: block.Header{HasDeletion: true, DeletionHash: block.DeletionHash(man.IndexDeletion)},
		Sealed: sealed,
	}.Encode()
	if _, err := pow.Solve(ctx, blk, r.ID, r.Difficulty, pow.Options{Workers: workers, Progress: progress, Interval: interval}); err != nil {
		return nil, fmt.Errorf("mail: grinding the index block for %s (difficulty %d): %w", r.Address(), r.Difficulty, err)
	}
	return blk, nil
}
