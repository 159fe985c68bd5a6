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
	"encoding/binary"
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
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
	if err != nil {
		return nil, err
	}
	z := enc.EncodeAll(envelope, nil)
	enc.Close()
	return SealCompressed(ctx, z, to, rnd)
}

// SealCompressed is Seal of bytes already compressed (or not zstd at
// all), for mails whose body breaks spec 9.3.
func SealCompressed(ctx context.Context, z []byte, to []*identity.PublicKey, rnd io.Reader) (*mail.Built, error) {
	man := &mail.Manifest{HasDataDeletion: len(to) == 1, Layout: layout(int64(len(z)))}
	for _, f := range [][]byte{man.ContentKey[:], man.DataDeletion[:]} {
		if _, err := io.ReadFull(rnd, f); err != nil {
			return nil, err
		}
	}
	aead, err := chacha20poly1305.New(man.ContentKey[:])
	if err != nil {
		return nil, err
	}
	hdr := block.Header{}
	if man.HasDataDeletion {
		hdr.HasDeletion, hdr.DeletionHash = true, block.DeletionHash(man.DataDeletion)
	}
	out := &mail.Built{Layout: man.Layout, Lifetime: block.MaxLifetime}
	l := man.Layout
	for g := range l.Groups {
		gl := l.Group(g)
		// 9.3 steps 3 and 4: this group's bytes of Z, zero padding, sealed
		// under the group's nonce.
		p := make([]byte, gl.Data*gl.ShardSize-16)
		z = z[copy(p, z):]
		var nonce [12]byte
		binary.BigEndian.PutUint64(nonce[3:11], uint64(g))
		if g == l.Groups-1 {
			nonce[11] = 1
		}
		c := aead.Seal(nil, nonce[:], p, []byte(block.LabelMail))
		// 9.4: Reed-Solomon into data blocks.
		rs, err := reedsolomon.New(gl.Data, gl.Parity)
		if err != nil {
			return nil, err
		}
		shards := make([][]byte, gl.Shards())
		for i := range shards {
			shards[i] = make([]byte, gl.ShardSize)
			if i < gl.Data {
				copy(shards[i], c[i*gl.ShardSize:])
			}
		}
		if err := rs.Encode(shards); err != nil {
			return nil, err
		}
		for _, sh := range shards {
			b := block.Data{Header: hdr, Payload: sh}.Encode()
			id := block.Sum(b)
			out.Data = append(out.Data, mail.Block{ID: id, Bytes: b})
			man.ShardIDs = append(man.ShardIDs, id)
		}
	}
	out.ShardIDs = man.ShardIDs

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
		if _, err := pow.Solve(ctx, blk, r.Owner, r.Difficulty, pow.Options{Workers: 1}); err != nil {
			return nil, fmt.Errorf("mailforge: grinding: %w", err)
		}
		out.Index = append(out.Index, mail.Block{ID: block.Sum(blk), Bytes: blk, Recipient: r.Owner})
	}
	return out, nil
}

// layout is spec 9.3 step 2, written from the spec: full groups of 64
// data shards of 261120 bytes, then the last group in the smallest shard
// size that takes the rest in at most 48 shards (else 261120), with at
// least 2; parity from the table of 9.4.
func layout(zlen int64) mail.Layout {
	const full = 64*261120 - 16
	groups := int((zlen + full - 1) / full)
	n := int(zlen-int64(groups-1)*full) + 16
	s := 261120
	for _, x := range []int{1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 261120} {
		if n <= 48*x {
			s = x
			break
		}
	}
	k := max(2, (n+s-1)/s)
	return mail.Layout{CompressedLen: zlen, Groups: groups, Last: mail.GroupLayout{ShardSize: s, Data: k, Parity: parity(k)}}
}

// parity is spec 9.4's table: m for k data shards, by the ranges of k.
func parity(k int) int {
	for _, r := range [...]struct{ upTo, m int }{{4, 7}, {7, 8}, {11, 9}, {16, 10}, {22, 11}, {28, 12}, {36, 13}, {43, 14}, {52, 15}, {61, 16}, {63, 17}, {64, 18}} {
		if k <= r.upTo {
			return r.m
		}
	}
	panic("mailforge: more than 64 data shards")
}
