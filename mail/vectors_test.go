package mail

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/vectors"
)

const vectorFile = "mail_codecs.json"

// errName is the vector name of a mail error: its sentinel's text
// without the package prefix, or "" for nil.
func errName(err error) string {
	return vectors.RuleName(err, ErrFromAddress, ErrTruncated, ErrTrailing, ErrVersion, ErrRecipientCount, ErrDuplicateRecipient, ErrMessageSize, ErrFlags, ErrShardSize, ErrShardCount, ErrGroupCount, ErrCompressedLen, ErrLayout, ErrPadding, ErrSender, ErrSignature, ErrNotRecipient, ErrFromHeader, ErrHeaderSize, ErrFromMismatch, ErrStale, ErrDecompress, ErrDecrypt, ErrShardsMissing, ErrNotRoutable, ErrGrantMAC, ErrClaim, ErrProofOfWork, ErrIndexBlock)
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
		e, msg, sender, err := OpenEnvelope(b, me)
		if err != nil {
			return nil, errName(err)
		}
		if !bytes.Equal(e.Encode(msg), b) {
			return nil, "re-encoding differs"
		}
		rcpts := make([]string, len(e.Recipients))
		for i, r := range e.Recipients {
			rcpts[i] = identity.FormatAddress(r)
		}
		return map[string]string{
			"time":         strconv.FormatInt(e.Time.Unix(), 10),
			"message_id":   hex.EncodeToString(e.MessageID[:]),
			"sender":       sender.Address(),
			"sender_block": sender.ID.String(),
			"rotated":      strconv.FormatBool(sender.ID != sender.Owner),
			"recipients":   strings.Join(rcpts, ","),
			"message":      string(msg),
			"message_hash": hex.EncodeToString(e.MessageHash[:]),
			"signed":       hex.EncodeToString(e.SignedBytes()),
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
		l := m.Layout
		out := map[string]string{
			"index_deletion": hex.EncodeToString(m.IndexDeletion[:]),
			"content_key":    hex.EncodeToString(m.ContentKey[:]),
			"compressed_len": strconv.FormatInt(l.CompressedLen, 10),
			"groups":         strconv.Itoa(l.Groups),
			"last_group":     fmt.Sprintf("%d+%d shards of %d", l.Last.Data, l.Last.Parity, l.Last.ShardSize),
			"shard_ids":      hex.EncodeToString(ids),
		}
		if m.HasDataDeletion {
			out["data_deletion"] = hex.EncodeToString(m.DataDeletion[:])
		}
		if m.HasClaim() {
			out["grant_id"] = hex.EncodeToString(m.GrantID[:])
			out["grant_mac"] = hex.EncodeToString(m.GrantMAC[:])
		}
		return out, ""
	case "UnmaskIndex":
		return checkIndexVector(v, b)
	case "MessageHash":
		h := MessageHash(b)
		return map[string]string{"hash": hex.EncodeToString(h[:])}, ""
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
	// alice1 is alice after one rotation: same address, another pubkey
	// block and signing key.
	aliceNext, err := alice.DerivedNextKey()
	if err != nil {
		panic(err)
	}
	alice1, _, err := alice.Rotate(aliceNext, 8, testCreated.Add(24*time.Hour), bytes.NewReader(bytes.Repeat([]byte{0x5a}, identity.SeedSize)))
	if err != nil {
		panic(err)
	}
	// env builds an envelope around msg; edit may change it before signer
	// signs, and after may change the bytes after signing.
	env := func(signer *identity.Identity, msg []byte, edit func(*Envelope), after func([]byte) []byte, rcpts ...*identity.Identity) string {
		e := &Envelope{Time: testNow, From: alice.ID(), Sender: alice.Public().Block}
		copy(e.MessageID[:], "vector-messageid")
		for _, r := range rcpts {
			e.Recipients = append(e.Recipients, r.ID())
		}
		e.Encode(msg) // sets MessageLen and MessageHash
		if edit != nil {
			edit(e)
		}
		e.Signature = signer.Sign(block.LabelEnvelope, e.SignedBytes())
		b := append(e.AppendHead(nil), msg...)
		b = append(b, e.Signature[:]...)
		if after != nil {
			b = after(bytes.Clone(b))
		}
		return hex.EncodeToString(b)
	}
	good := msgFrom(alice)
	fromAt := 1 + 8 + messageIDSize
	recipientCountAt := fromAt + block.IDSize + block.PubkeySize
	setU16 := func(at int, v uint16) func([]byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint16(b[at:], v); return b }
	}
	setU64 := func(at int, v uint64) func([]byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint64(b[at:], v); return b }
	}
	msgLenAt := recipientCountAt + 2 + block.IDSize
	forBob := map[string]string{"recipient": bob.Address()}
	ev := func(name, note, input, errName string, params map[string]string) vectors.Vector {
		if params == nil {
			params = forBob
		}
		return vectors.Vector{Name: name, Function: "OpenEnvelope", Input: input, Params: params, Error: errName, Note: note}
	}
	longHeader := append(append(msgFrom(alice)[:0:0], "From: <"+HeaderAddress(alice.ID())+">\r\nX-Long: "...), bytes.Repeat([]byte("x"), MaxHeaderSize)...)
	longHeader = append(longHeader, "\r\n\r\nbody"...)
	vs := []vectors.Vector{
		ev("envelope_ok", "one recipient; alice signs for bob", env(alice, good, nil, nil, bob), "", nil),
		ev("envelope_ok_three_recipients", "carol checks a mail to bob, carol and mallory",
			env(alice, good, nil, nil, bob, carol, mallory), "", map[string]string{"recipient": carol.Address()}),
		ev("envelope_truncated_head", "shorter than the fixed fields", env(alice, good, nil, func(b []byte) []byte { return b[:100] }, bob), "truncated", nil),
		ev("envelope_truncated_signature", "last signature byte missing", env(alice, good, nil, func(b []byte) []byte { return b[:len(b)-1] }, bob), "truncated", nil),
		ev("envelope_trailing_byte", "9.2: trailing bytes MUST be rejected", env(alice, good, nil, func(b []byte) []byte { return append(b, 0) }, bob), "trailing bytes", nil),
		ev("envelope_version_2", "version MUST be 3 (version 2 carried no from address)", env(alice, good, nil, func(b []byte) []byte { b[0] = 2; return b }, bob), "unsupported version", nil),
		ev("envelope_from_zero", "9.2: from MUST NOT be the zero address",
			env(alice, good, func(e *Envelope) { e.From = block.ID{} }, nil, bob), "envelope from address is zero", nil),
		ev("envelope_rotated_sender", "9.2: alice after a rotation: from is her address, the block is generation 1's (its ID differs); 15.5: the recipient checks the key against her key log",
			env(alice1, good, func(e *Envelope) { e.Sender = alice1.Public().Block }, nil, bob), "", nil),
		ev("envelope_rotated_from_names_block", "9.2: the From: address MUST be the from address, not the current block's ID",
			env(alice1, []byte("From: <"+HeaderAddress(alice1.Public().ID)+">\r\nTo: <"+HeaderAddress(bob.ID())+">\r\n\r\nx"), func(e *Envelope) { e.Sender = alice1.Public().Block }, nil, bob), "From header does not name the signer", nil),
		ev("envelope_from_other_than_block", "9.2: a generation-0 block of another address does not sign for alice (her from address, mallory's block and key): the From check passes, the key log check of 15.5 refuses it",
			env(mallory, good, func(e *Envelope) { e.Sender = mallory.Public().Block }, nil, bob), "", nil),
		ev("envelope_no_recipients", "recipient_count 1 to MaxRecipients", env(alice, good, nil, setU16(recipientCountAt, 0), bob), "recipient count out of range", nil),
		ev("envelope_65_recipients", "recipient_count 1 to MaxRecipients", env(alice, good, nil, setU16(recipientCountAt, MaxRecipients+1), bob), "recipient count out of range", nil),
		ev("envelope_duplicate_recipient", "recipients: no duplicates", env(alice, good, nil, nil, bob, bob), "duplicate recipient", nil),
		ev("envelope_empty_message", "message_len 1 to MaxMessageSize", env(alice, good, nil, setU64(msgLenAt, 0), bob), "message size out of range", nil),
		ev("envelope_message_too_large", "message_len 1 to MaxMessageSize", env(alice, good, nil, setU64(msgLenAt, MaxMessageSize+1), bob), "message size out of range", nil),
		ev("envelope_message_len_huge", "message_len 1 to MaxMessageSize, as a u64", env(alice, good, nil, setU64(msgLenAt, 1<<63), bob), "message size out of range", nil),
		ev("envelope_sender_block_broken", "9.2: the sender block MUST verify",
			env(alice, good, func(e *Envelope) { e.Sender = bytes.Clone(e.Sender); e.Sender[1300] ^= 1 }, nil, bob), "sender pubkey block does not verify", nil),
		ev("envelope_signature_flipped", "9.2: the signature MUST verify", env(alice, good, nil, func(b []byte) []byte { b[len(b)-1] ^= 1; return b }, bob), "envelope signature does not verify", nil),
		ev("envelope_message_altered", "9.2: the signature covers the message hash",
			env(alice, good, nil, func(b []byte) []byte { b[len(b)-block.SignatureSize-3] ^= 1; return b }, bob), "envelope signature does not verify", nil),
		ev("envelope_signed_over_other_hash", "9.2: the signature MUST cover the hash of this message",
			env(alice, good, func(e *Envelope) { e.MessageHash[0] ^= 1 }, nil, bob), "envelope signature does not verify", nil),
		ev("envelope_signed_by_other", "9.2: the signature MUST be by the sender block's key", env(mallory, good, nil, nil, bob), "envelope signature does not verify", nil),
		ev("envelope_not_for_recipient", "9.2: MUST list the recipient's address (forwarded mail)",
			env(alice, good, nil, nil, carol), "not addressed to this recipient", nil),
		ev("envelope_from_not_signer", "9.2: the From: address MUST be the sender's",
			env(mallory, msgFrom(mallory), func(e *Envelope) { e.Sender = alice.Public().Block }, nil, bob), "envelope signature does not verify", nil),
		ev("envelope_from_other_address", "9.2: the From: address MUST be the sender's",
			env(alice, msgFrom(mallory), nil, nil, bob), "From header does not name the signer", nil),
		ev("envelope_no_from", "9.1: From MUST name the sender",
			env(alice, []byte("Subject: no from\r\n\r\nx"), nil, nil, bob), "no usable From header", nil),
		ev("envelope_header_too_long", "9.1: the header section MUST end within MaxHeaderSize bytes",
			env(alice, longHeader, nil, nil, bob), "header section too long", nil),
	}

	// Message hashes at the chunk edges.
	for _, n := range []int{1, HashChunk, HashChunk + 1} {
		msg := bytes.Repeat([]byte{'a'}, n)
		vs = append(vs, vectors.Vector{Name: fmt.Sprintf("message_hash_%d", n), Function: "MessageHash",
			Input: hex.EncodeToString(msg), Note: "9.2: LH(message, Sum of each 65536-byte chunk)"})
	}

	// Manifests.
	var ids []block.ID
	for i := range 200 {
		ids = append(ids, block.Sum([]byte{byte(i)}))
	}
	key := func(b byte) (k [keySize]byte) {
		for i := range k {
			k[i] = b
		}
		return k
	}
	layout := func(zlen int64) Layout {
		l, err := LayoutFor(zlen)
		if err != nil {
			panic(err)
		}
		return l
	}
	// man encodes a manifest for zlen compressed bytes; edit may change it
	// before encoding, after the bytes.
	man := func(zlen int64, edit func(*Manifest), after func([]byte) []byte) string {
		m := &Manifest{IndexDeletion: key(0xa1), HasDataDeletion: true, DataDeletion: key(0xd1), ContentKey: key(0xc1), Layout: layout(zlen)}
		m.ShardIDs = ids[:m.Layout.Shards()]
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
	const zlenAt = 2 + 3*keySize // with the data deletion preimage
	set32 := func(off int, v uint32) func([]byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint32(b[zlenAt+off:], v); return b }
	}
	set16 := func(off int, v uint16) func([]byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint16(b[zlenAt+off:], v); return b }
	}
	setZ := func(v uint64) func([]byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint64(b[zlenAt:], v); return b }
	}
	mv := func(name, note, input, errName string) vectors.Vector {
		return vectors.Vector{Name: name, Function: "DecodeManifest", Input: input, Error: errName, Note: note}
	}
	noDeletion := func(m *Manifest) { m.HasDataDeletion = false }
	vs = append(vs,
		mv("manifest_ok_single_recipient", "2000 compressed bytes: one group of 2+7 shards of 1024; data blocks carry a deletion hash", man(2000, nil, nil), ""),
		mv("manifest_ok_48_shards", "several recipients: no data deletion preimage; 48+15 shards of 1024 (LastGroupMaxData)", man(48*1024-tagSize, noDeletion, nil), ""),
		mv("manifest_ok_65520", "65520 compressed bytes: 33 would not fit in LastGroupMaxData shards of 1024, so 32+13 of 2048", man(65520, noDeletion, nil), ""),
		mv("manifest_64_small_shards", "9.3: 64+18 shards of 1024 (the layout of manifest version 3, with today's parity) for 65520 bytes: the last group has at most LastGroupMaxData shards unless S is MaxShardSize", man(65520, nil, func(b []byte) []byte {
			set32(12, 1024)(b)
			set16(16, 64)(b)
			return set16(18, 18)(b)
		}), "shard layout does not match compressed length"),
		mv("manifest_ok_1mib", "1 MiB compressed: 33+13 shards of 32768", man(1<<20, noDeletion, nil), ""),
		mv("manifest_ok_two_groups", "one byte over a full group: a full group of 64+18 shards of 261120, then 2+7 of 1024",
			man(GroupDataShards*MaxShardSize-tagSize+1, noDeletion, nil), ""),
		mv("manifest_truncated", "shorter than the fixed fields", man(2000, nil, func(b []byte) []byte { return b[:50] }), "truncated"),
		mv("manifest_truncated_ids", "shard IDs cut off", man(65520, noDeletion, func(b []byte) []byte { return b[:400] }), "truncated"),
		mv("manifest_unpadded", "9.5: the plaintext length MUST be a multiple of 128", man(2000, nil, func(b []byte) []byte { return b[:zlenAt+20+10*32] }), "truncated"),
		mv("manifest_extra_padding", "9.5: padding only up to the next multiple of 128", man(2000, nil, func(b []byte) []byte { return append(b, make([]byte, 128)...) }), "trailing bytes"),
		mv("manifest_padding_not_zero", "9.5: padding MUST be zero", man(2000, nil, func(b []byte) []byte { b[len(b)-1] = 1; return b }), "padding not zero"),
		mv("manifest_version_3", "version MUST be 5 (version 3 let the last group have up to 64 shards of any size)", man(2000, nil, at(0, 3)), "unsupported version"),
		mv("manifest_version_4", "version MUST be 5 (version 4 had 7 + ceil(k/4) parity shards)", man(2000, nil, at(0, 4)), "unsupported version"),
		mv("manifest_reserved_flag", "flags: other bits 0", man(2000, nil, at(1, 3)), "invalid flags"),
		mv("manifest_zero_compressed_len", "compressed_len 1 to MaxCompressedLen", man(2000, nil, setZ(0)), "compressed length out of range"),
		mv("manifest_compressed_len_too_large", "compressed_len 1 to MaxCompressedLen", man(2000, nil, setZ(MaxCompressedLen+1)), "compressed length out of range"),
		mv("manifest_zero_groups", "groups 1 to MaxGroups", man(2000, nil, set32(8, 0)), "group count out of range"),
		mv("manifest_too_many_groups", "groups 1 to MaxGroups: a manifest naming more groups than any mail has", man(2000, nil, set32(8, MaxGroups+1)), "group count out of range"),
		mv("manifest_shard_size_3000", "shard_size one of the sizes of 9.3", man(2000, nil, set32(12, 3000)), "invalid shard size"),
		mv("manifest_one_data_shard", "data_shards 2 to GroupDataShards", man(2000, nil, set16(16, 1)), "invalid shard counts"),
		mv("manifest_65_data_shards", "data_shards 2 to GroupDataShards", man(2000, nil, set16(16, 65)), "invalid shard counts"),
		mv("manifest_parity_not_the_table", "parity_shards is 9.4's table's m for k", man(2000, nil, set16(18, 9)), "invalid shard counts"),
		mv("manifest_parity_of_version_4", "9.4: 2+8, what 7 + ceil(k/4) gave, is no longer the layout", man(2000, nil, set16(18, 8)), "invalid shard counts"),
		mv("manifest_two_groups_for_one", "groups MUST be what 9.3 gives for compressed_len", man(2000, nil, set32(8, 2)), "shard layout does not match compressed length"),
		mv("manifest_oversized_shards", "S is the smallest class that fits (9.3)", man(2000, nil, set32(12, 2048)), "shard layout does not match compressed length"),
		mv("manifest_ok_grant_claim", "9.5, 17.3: grant_id and grant_mac as a sender fills them", man(2000, func(m *Manifest) {
			g := key(0x61)
			m.GrantID, m.GrantMAC = [GrantIDSize]byte(g[:GrantIDSize]), key(0x6d)
		}, nil), ""),
		mv("manifest_mac_without_grant", "9.5: grant_mac MUST be zero when grant_id is", man(2000, func(m *Manifest) { m.GrantMAC = key(0x6d) }, nil), "grant_mac without a grant_id"),
		mv("manifest_extra_data_shard", "k = max(2, ceil((r+16)/S)) (9.3)", man(2000, nil, func(b []byte) []byte {
			set16(16, 3)(b)
			return set16(18, uint16(ParityShards(3)))(b)
		}), "shard layout does not match compressed length"),
	)
	vs = append(vs, indexVectors(alice)...)
	return vectors.File{
		Description: "Envelope (docs/PROTOCOL.md 9.2), message hash (9.2) and manifest (9.5) codecs; index blocks with masked work and grant claims (6, 17.3, 17.4) for dora, identity.FromSeed of 50 51 ... with difficulty 18 (L = 16, two hidden bits). Identities are identity.FromSeed of 10 11 12 ... (alice), 20 21 ... (bob), 30 ... (carol), 40 ... (mallory), difficulty 8, created 1767225600.",
		Vectors:     vs,
	}
}
