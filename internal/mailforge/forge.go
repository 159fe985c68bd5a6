// Package mailforge builds mails the way a dishonest sender can: around
// any envelope bytes, sealed to anyone, ground to any difficulty. It
// follows docs/PROTOCOL.md 9.3 to 9.5 on its own (it shares no code with
// package mail beyond the manifest encoder), so tests can hand a
// recipient what an honest mail.Codec refuses to build, and check that
// the spec as written is what mail opens. For tests only.
//
// It may import block, identity, pow and mail.
package mailforge

import (
	"context"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/reedsolomon"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/pow"
)

// Seal builds a mail around envelope, exactly as given, with one index
// block per recipient in to, each ground to that recipient's difficulty.
// Keys and deletion preimages come from rnd. The data blocks carry a
// deletion hash when there is one recipient.
func Seal(ctx context.Context, envelope []byte, to []*identity.PublicKey, rnd io.Reader) (*mail.Built, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	z := enc.EncodeAll(envelope, nil)
	enc.Close()

	// 9.3: shard size, counts, padding, encryption.
	s := 261120
	for _, x := range []int{4096, 65536, 261120} {
		if len(z)+16 <= 16*x {
			s = x
			break
		}
	}
	k := (len(z) + 16 + s - 1) / s
	m := (k + 1) / 2
	man := &mail.Manifest{CompressedLen: len(z), ShardSize: s, DataShards: k, ParityShards: m}
	for _, f := range [][]byte{man.ContentKey[:], man.DataDeletion[:]} {
		if _, err := io.ReadFull(rnd, f); err != nil {
			return nil, err
		}
	}
	man.HasDataDeletion = len(to) == 1
	aead, err := chacha20poly1305.New(man.ContentKey[:])
	if err != nil {
		return nil, err
	}
	p := make([]byte, k*s-16)
	copy(p, z)
	c := aead.Seal(nil, make([]byte, 12), p, []byte(block.LabelMail))

	// 9.4: Reed-Solomon into data blocks.
	rs, err := reedsolomon.New(k, m)
	if err != nil {
		return nil, err
	}
	shards := make([][]byte, k+m)
	for i := range shards {
		shards[i] = make([]byte, s)
		if i < k {
			copy(shards[i], c[i*s:])
		}
	}
	if err := rs.Encode(shards); err != nil {
		return nil, err
	}
	hdr := block.Header{Version: block.Version, Type: block.TypeData}
	if man.HasDataDeletion {
		hdr.HasDeletion, hdr.DeletionHash = true, block.DeletionHash(man.DataDeletion)
	}
	out := &mail.Built{ShardSize: s, DataShards: k, ParityShards: m, Lifetime: block.MaxLifetime}
	for _, sh := range shards {
		b := block.Data{Header: hdr, Payload: sh}.Encode()
		id := block.Sum(b)
		out.Data = append(out.Data, mail.Block{ID: id, Bytes: b})
		man.ShardIDs = append(man.ShardIDs, id)
	}

	// 9.5 and 6: one index block per recipient.
	for _, r := range to {
		if _, err := io.ReadFull(rnd, man.IndexDeletion[:]); err != nil {
			return nil, err
		}
		sealed, err := r.Seal(block.LabelIndex, man.Encode())
		if err != nil {
			return nil, err
		}
		blk := block.Index{Header: block.Header{HasDeletion: true, DeletionHash: block.DeletionHash(man.IndexDeletion)}, Sealed: sealed}.Encode()
		if _, err := pow.Solve(ctx, blk, r.ID, r.Difficulty, pow.Options{Workers: 1}); err != nil {
			return nil, fmt.Errorf("mailforge: grinding: %w", err)
		}
		out.Index = append(out.Index, mail.Block{ID: block.Sum(blk), Bytes: blk, Recipient: r.ID})
	}
	return out, nil
}
