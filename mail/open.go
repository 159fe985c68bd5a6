package mail

import (
	"fmt"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

// Mail is an opened and verified mail.
type Mail struct {
	Envelope *Envelope
	Sender   *identity.PublicKey // verified; Envelope's signer
}

// Message returns the RFC 5322 bytes, exactly as the sender signed them.
func (m *Mail) Message() []byte { return m.Envelope.Message }

// OpenIndex opens the index block blk, listed under id, for me, with the
// checks of spec 6 and 9.5: the block hashes to id, its ID carries my
// proof of work, it parses, its manifest opens and is well formed. A
// block sealed to someone else gives an error matching
// identity.ErrNotForMe.
func OpenIndex(me *identity.Identity, id block.ID, blk []byte) (*Manifest, error) {
	if got := block.Sum(blk); got != id {
		return nil, fmt.Errorf("%w: listed as %s, its bytes hash to %s", ErrIndexBlock, id.Short(), got.Short())
	}
	if err := CheckProofOfWork(me, id); err != nil {
		return nil, err
	}
	x, err := block.ParseIndex(blk)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIndexBlock, err)
	}
	plain, err := me.Open(block.LabelIndex, x.Sealed)
	if err != nil {
		return nil, err
	}
	return DecodeManifest(plain)
}

// CheckProofOfWork is the check of spec 6: the index block id shares at
// least me's difficulty leading bits with me's address. A recipient makes
// it before fetching the block.
func CheckProofOfWork(me *identity.Identity, id block.ID) error {
	if cpl, d := block.CommonPrefixLen(id, me.ID()), me.Difficulty(); cpl < d {
		return fmt.Errorf("%w: its ID shares %d leading bits with %s, %d demanded", ErrProofOfWork, cpl, me.Address(), d)
	}
	return nil
}

// ShardPayload checks that blk is shard i of the mail man describes (spec
// 9.5): it hashes to the shard's ID, is a data block, and carries a
// payload of the shard size. It returns the payload, aliasing blk. A
// recipient treats a shard that fails as missing.
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
	if len(d.Payload) != man.ShardSize {
		return nil, fmt.Errorf("payload of %d bytes, the manifest says %d", len(d.Payload), man.ShardSize)
	}
	return d.Payload, nil
}

// OpenBody rebuilds, decrypts and decompresses the body of the mail man
// describes from payloads (the shard payloads in coding order, nil where
// missing; at least DataShards present, each checked by ShardPayload),
// and verifies the envelope for me (spec 9.2 to 9.4). With a non-zero now
// it also refuses an envelope signed before any block still alive was
// stored: a replay.
func (c *Codec) OpenBody(me *identity.Identity, man *Manifest, payloads [][]byte, now time.Time) (*Mail, error) {
	if len(payloads) != len(man.ShardIDs) {
		return nil, fmt.Errorf("mail: %d shard payloads for %d shards", len(payloads), len(man.ShardIDs))
	}
	z, buf, err := c.decode(man, payloads)
	if err != nil {
		return nil, err
	}
	envelope, err := c.decompress(z)
	c.putBuf(buf)
	if err != nil {
		return nil, err
	}
	env, sender, err := OpenEnvelope(envelope, me.ID())
	if err != nil {
		return nil, err
	}
	if !now.IsZero() && env.Time.Before(now.Add(-ReplayWindow)) {
		return nil, fmt.Errorf("%w: signed on %s, before any block still alive was stored: a replay", ErrStale, env.Time.UTC().Format(time.DateOnly))
	}
	return &Mail{Envelope: env, Sender: sender}, nil
}
