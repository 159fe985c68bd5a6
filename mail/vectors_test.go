package mail

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/vectors"
)

const vectorFile = "mail_codecs.json"

// errName is the vector name of a mail error: its sentinel's text
// without the package prefix, or "" for nil.
func errName(err error) string {
	return vectors.RuleName(err, ErrTruncated, ErrTrailing, ErrVersion, ErrRecipientCount, ErrDuplicateRecipient, ErrMessageSize, ErrFlags, ErrShardSize, ErrShardCount, ErrCompressedLen, ErrLayout, ErrPadding, ErrSender, ErrSignature, ErrNotRecipient, ErrFromHeader, ErrFromMismatch, ErrStale, ErrTooLarge, ErrDecompress, ErrDecrypt, ErrShardsMissing, ErrProofOfWork, ErrIndexBlock)
}

func TestVectors(t *testing.T) {
	vectors.Check(t, vectorFile, genVectors, checkVector)
}

func checkVector(v vectors.Vector) (map[string]string, string) {
	b, err := hex.DecodeString(v.Input)
	if err != nil {
		return nil, "bad hex"
	}
	switch v.Function {
	case "OpenEnvelope":
		me, err := identity.ParseAddress(v.Params["recipient"])
		if err != nil {
			return nil, "bad recipient param"
		}
		e, sender, err := OpenEnvelope(b, me)
		if err != nil {
			return nil, errName(err)
		}
		if !bytes.Equal(e.Encode(), b) {
			return nil, "re-encoding differs"
		}
		rcpts := make([]string, len(e.Recipients))
		for i, r := range e.Recipients {
			rcpts[i] = identity.FormatAddress(r)
		}
		return map[string]string{
			"time":       strconv.FormatInt(e.Time.Unix(), 10),
			"message_id": hex.EncodeToString(e.MessageID[:]),
			"sender":     sender.Address(),
			"recipients": strings.Join(rcpts, ","),
			"message":    string(e.Message),
		}, ""
	case "DecodeManifest":
		m, err := DecodeManifest(b)
		if err != nil {
			return nil, errName(err)
		}
		if !bytes.Equal(m.Encode(), b) {
			return nil, "re-encoding differs"
		}
		var ids []byte
		for _, id := range m.ShardIDs {
			ids = append(ids, id[:]...)
		}
		out := map[string]string{
			"index_deletion": hex.EncodeToString(m.IndexDeletion[:]),
			"content_key":    hex.EncodeToString(m.ContentKey[:]),
			"compressed_len": strconv.Itoa(m.CompressedLen),
			"shard_size":     strconv.Itoa(m.ShardSize),
			"data_shards":    strconv.Itoa(m.DataShards),
			"parity_shards":  strconv.Itoa(m.ParityShards),
			"shard_ids":      hex.EncodeToString(ids),
		}
		if m.HasDataDeletion {
			out["data_deletion"] = hex.EncodeToString(m.DataDeletion[:])
		}
		return out, ""
	}
	return nil, "unknown function " + v.Function
}

// vectorIdentity is identity.FromSeed of the seed 00 01 02 ... offset by
// n, difficulty 8, created 2026-01-01.
func vectorIdentity(n byte) *identity.Identity {
	var seed [identity.SeedSize]byte
	for i := range seed {
		seed[i] = n + byte(i)
	}
	id, err := identity.FromSeed(seed, 8, testCreated)
	if err != nil {
		panic(err)
	}
	return id
}

func genVectors() vectors.File {
	alice, bob, carol, mallory := vectorIdentity(0x10), vectorIdentity(0x20), vectorIdentity(0x30), vectorIdentity(0x40)
	msgFrom := func(from *identity.Identity) []byte {
		return []byte("From: <" + HeaderAddress(from.ID()) + ">\r\nTo: <" + HeaderAddress(bob.ID()) + ">\r\nSubject: vector\r\n\r\nhello\r\n")
	}
	// env builds an envelope; edit may change it before signer signs, and
	// after may change the bytes after signing.
	env := func(signer *identity.Identity, msg []byte, edit func(*Envelope), after func([]byte) []byte, rcpts ...*identity.Identity) string {
		e := &Envelope{Time: testNow, Sender: alice.Public().Block, Message: msg}
		copy(e.MessageID[:], "vector-messageid")
		for _, r := range rcpts {
			e.Recipients = append(e.Recipients, r.ID())
		}
		if edit != nil {
			edit(e)
		}
		e.Signature = signer.Sign(block.LabelEnvelope, e.appendSigned(nil))
		b := e.Encode()
		if after != nil {
			b = after(bytes.Clone(b))
		}
		return hex.EncodeToString(b)
	}
	good := msgFrom(alice)
	recipientCountAt := 1 + 8 + messageIDSize + block.PubkeySize
	setU16 := func(at int, v uint16) func([]byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint16(b[at:], v); return b }
	}
	setU32 := func(at int, v uint32) func([]byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint32(b[at:], v); return b }
	}
	msgLenAt := recipientCountAt + 2 + block.IDSize
	forBob := map[string]string{"recipient": bob.Address()}
	ev := func(name, note, input, errName string, params map[string]string) vectors.Vector {
		if params == nil {
			params = forBob
		}
		return vectors.Vector{Name: name, Function: "OpenEnvelope", Input: input, Params: params, Error: errName, Note: note}
	}
	vs := []vectors.Vector{
		ev("envelope_ok", "one recipient; alice signs for bob", env(alice, good, nil, nil, bob), "", nil),
		ev("envelope_ok_three_recipients", "carol checks a mail to bob, carol and mallory",
			env(alice, good, nil, nil, bob, carol, mallory), "", map[string]string{"recipient": carol.Address()}),
		ev("envelope_truncated_head", "shorter than the fixed fields", env(alice, good, nil, func(b []byte) []byte { return b[:100] }, bob), "truncated", nil),
		ev("envelope_truncated_signature", "last signature byte missing", env(alice, good, nil, func(b []byte) []byte { return b[:len(b)-1] }, bob), "truncated", nil),
		ev("envelope_trailing_byte", "9.2: trailing bytes MUST be rejected", env(alice, good, nil, func(b []byte) []byte { return append(b, 0) }, bob), "trailing bytes", nil),
		ev("envelope_version_2", "version MUST be 1", env(alice, good, nil, func(b []byte) []byte { b[0] = 2; return b }, bob), "unsupported version", nil),
		ev("envelope_no_recipients", "recipient_count 1 to MaxRecipients", env(alice, good, nil, setU16(recipientCountAt, 0), bob), "recipient count out of range", nil),
		ev("envelope_65_recipients", "recipient_count 1 to MaxRecipients", env(alice, good, nil, setU16(recipientCountAt, MaxRecipients+1), bob), "recipient count out of range", nil),
		ev("envelope_duplicate_recipient", "recipients: no duplicates", env(alice, good, nil, nil, bob, bob), "duplicate recipient", nil),
		ev("envelope_empty_message", "message_len 1 to MaxMessageSize", env(alice, good, nil, setU32(msgLenAt, 0), bob), "message size out of range", nil),
		ev("envelope_message_too_large", "message_len 1 to MaxMessageSize", env(alice, good, nil, setU32(msgLenAt, MaxMessageSize+1), bob), "message size out of range", nil),
		ev("envelope_sender_block_broken", "9.2: the sender block MUST verify",
			env(alice, good, func(e *Envelope) { e.Sender = bytes.Clone(e.Sender); e.Sender[1300] ^= 1 }, nil, bob), "sender pubkey block does not verify", nil),
		ev("envelope_signature_flipped", "9.2: the signature MUST verify", env(alice, good, nil, func(b []byte) []byte { b[len(b)-1] ^= 1; return b }, bob), "envelope signature does not verify", nil),
		ev("envelope_message_altered", "9.2: the signature MUST verify",
			env(alice, good, nil, func(b []byte) []byte { b[len(b)-block.SignatureSize-3] ^= 1; return b }, bob), "envelope signature does not verify", nil),
		ev("envelope_signed_by_other", "9.2: the signature MUST be by the sender block's key", env(mallory, good, nil, nil, bob), "envelope signature does not verify", nil),
		ev("envelope_not_for_recipient", "9.2: MUST list the recipient's address (forwarded mail)",
			env(alice, good, nil, nil, carol), "not addressed to this recipient", nil),
		ev("envelope_from_not_signer", "9.2: the From: address MUST be the sender's",
			env(mallory, msgFrom(mallory), func(e *Envelope) { e.Sender = alice.Public().Block }, nil, bob), "envelope signature does not verify", nil),
		ev("envelope_from_other_address", "9.2: the From: address MUST be the sender's",
			env(alice, msgFrom(mallory), nil, nil, bob), "From header does not name the signer", nil),
		ev("envelope_no_from", "9.1: From MUST name the sender",
			env(alice, []byte("Subject: no from\r\n\r\nx"), nil, nil, bob), "no usable From header", nil),
	}

	// Manifests.
	var ids []block.ID
	for i := range 2 + 24 + 8 {
		ids = append(ids, block.Sum([]byte{byte(i)}))
	}
	key := func(b byte) (k [keySize]byte) {
		for i := range k {
			k[i] = b
		}
		return k
	}
	man := func(edit func(*Manifest), after func([]byte) []byte) string {
		m := &Manifest{IndexDeletion: key(0xa1), HasDataDeletion: true, DataDeletion: key(0xd1), ContentKey: key(0xc1),
			CompressedLen: 2000, ShardSize: 4096, DataShards: 1, ParityShards: 1, ShardIDs: ids[:2]}
		if edit != nil {
			edit(m)
		}
		b := m.Encode()
		if after != nil {
			b = after(b)
		}
		return hex.EncodeToString(b)
	}
	at := func(off int, v byte) func([]byte) []byte { return func(b []byte) []byte { b[off] = v; return b } }
	const countsAt = 2 + 3*keySize + 8 // with the data deletion preimage
	mv := func(name, note, input, errName string) vectors.Vector {
		return vectors.Vector{Name: name, Function: "DecodeManifest", Input: input, Error: errName, Note: note}
	}
	multi := func(m *Manifest) {
		m.HasDataDeletion, m.CompressedLen, m.DataShards, m.ParityShards, m.ShardIDs = false, 65520, 16, 8, ids[2:26]
	}
	vs = append(vs,
		mv("manifest_ok_single_recipient", "k=1: data blocks carry a deletion hash", man(nil, nil), ""),
		mv("manifest_ok_16_shards", "several recipients: no data deletion preimage; 16+8 shards of 4096", man(multi, nil), ""),
		mv("manifest_ok_large_shards", "5+3 shards of 261120", man(func(m *Manifest) {
			m.CompressedLen, m.ShardSize, m.DataShards, m.ParityShards, m.ShardIDs = 16*65536-15, 261120, 5, 3, ids[26:34]
		}, nil), ""),
		mv("manifest_truncated", "shorter than the fixed fields", man(nil, func(b []byte) []byte { return b[:50] }), "truncated"),
		mv("manifest_truncated_ids", "shard IDs cut off", man(multi, func(b []byte) []byte { return b[:400] }), "truncated"),
		mv("manifest_unpadded", "9.5: the plaintext length MUST be a multiple of 128", man(nil, func(b []byte) []byte { return b[:countsAt+4+64] }), "truncated"),
		mv("manifest_extra_padding", "9.5: padding only up to the next multiple of 128", man(nil, func(b []byte) []byte { return append(b, make([]byte, 128)...) }), "trailing bytes"),
		mv("manifest_padding_not_zero", "9.5: padding MUST be zero", man(nil, func(b []byte) []byte { b[len(b)-1] = 1; return b }), "padding not zero"),
		mv("manifest_version_2", "version 1", man(nil, at(0, 2)), "unsupported version"),
		mv("manifest_reserved_flag", "flags: other bits 0", man(nil, at(1, 3)), "invalid flags"),
		mv("manifest_shard_size_8192", "shard_size 4096, 65536 or 261120", man(func(m *Manifest) { m.ShardSize = 8192 }, nil), "invalid shard size"),
		mv("manifest_zero_data_shards", "data_shards 1 to MaxDataShards", man(func(m *Manifest) { m.DataShards, m.ParityShards, m.ShardIDs = 0, 2, ids[:2] }, nil), "invalid shard counts"),
		mv("manifest_171_data_shards", "data_shards 1 to MaxDataShards", man(nil, at(countsAt+1, 171)), "invalid shard counts"),
		mv("manifest_zero_parity_shards", "parity_shards 1 to MaxDataShards", man(func(m *Manifest) { m.ParityShards, m.ShardIDs = 0, ids[:1] }, nil), "invalid shard counts"),
		mv("manifest_more_than_256_shards", "k + m <= 256", man(nil, func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[countsAt:], 170)
			binary.BigEndian.PutUint16(b[countsAt+2:], 87)
			return b
		}), "invalid shard counts"),
		mv("manifest_compressed_len_too_large", "compressed_len at most k·S − 16", man(func(m *Manifest) { m.CompressedLen = 4081 }, nil), "compressed length out of range"),
		mv("manifest_extra_parity", "m = ceil(k/2) (9.4)", man(func(m *Manifest) { m.ParityShards, m.ShardIDs = 2, ids[:3] }, nil), "shard layout does not match compressed length"),
		mv("manifest_oversized_shards", "S is the smallest class that fits (9.3)", man(func(m *Manifest) { m.ShardSize = 65536 }, nil), "shard layout does not match compressed length"),
		mv("manifest_empty_data_shard", "k = ceil((len(Z)+16)/S) (9.3)", man(func(m *Manifest) { m.DataShards, m.ParityShards, m.ShardIDs = 2, 1, ids[:3] }, nil), "shard layout does not match compressed length"),
	)
	return vectors.File{
		Description: "Envelope (docs/PROTOCOL.md 9.2) and manifest (9.5) codecs. Identities are identity.FromSeed of 10 11 12 ... (alice), 20 21 ... (bob), 30 ... (carol), 40 ... (mallory), difficulty 8, created 1767225600.",
		Vectors:     vs,
	}
}
