package identity

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/internal/vectors"
)

func identityErrName(err error) string {
	return vectors.RuleName(err, ErrKeyFileRole, ErrKeyFile, ErrAddressTypo, ErrAddressFormat, block.ErrSignature, block.ErrPubkey, block.ErrTruncated, block.ErrTrailing, block.ErrWrongType, block.ErrFlags, block.ErrType, block.ErrVersion)
}

func checkIdentityVector(v vectors.Vector) (map[string]string, string) {
	switch v.Function {
	case "ParsePubkey":
		b, err := hex.DecodeString(v.Input)
		if err != nil {
			return nil, "bad hex"
		}
		p, err := ParsePubkey(b)
		if err != nil {
			return nil, identityErrName(err)
		}
		return map[string]string{
			"id":         p.ID.String(),
			"address":    p.Address(),
			"difficulty": strconv.Itoa(p.Difficulty),
			"created":    strconv.FormatInt(p.Created.Unix(), 10),
			"next":       hex.EncodeToString(p.Next[:]),
		}, ""
	case "FromSeed":
		seed, err := hex.DecodeString(v.Input)
		if err != nil || len(seed) != SeedSize {
			return nil, "bad seed"
		}
		d, _ := strconv.Atoi(v.Params["difficulty"])
		created, _ := strconv.ParseInt(v.Params["created"], 10, 64)
		id, err := FromSeed([SeedSize]byte(seed), d, timeUnix(created))
		if err != nil {
			return nil, "unexpected: " + err.Error()
		}
		return map[string]string{"pubkey_block": hex.EncodeToString(id.Public().Block), "address": id.Address()}, ""
	case "DecodeKeyFile":
		b, err := hex.DecodeString(v.Input)
		if err != nil {
			return nil, "bad hex"
		}
		id, err := DecodeKeyFile(b, nil)
		if err != nil {
			return nil, identityErrName(err)
		}
		return map[string]string{
			"address":      id.Address(),
			"generation":   strconv.Itoa(id.Generation()),
			"pubkey_id":    id.Public().ID.String(),
			"retired_keys": strconv.Itoa(len(id.RetiredUntil())),
		}, ""
	case "DecodeNextKeyFile":
		b, err := hex.DecodeString(v.Input)
		if err != nil {
			return nil, "bad hex"
		}
		k, err := DecodeNextKeyFile(b, nil)
		if err != nil {
			return nil, identityErrName(err)
		}
		return map[string]string{
			"address":    FormatAddress(k.Address()),
			"generation": strconv.Itoa(k.Generation()),
			"commitment": hex.EncodeToString(func() []byte { c := k.Commitment(); return c[:] }()),
		}, ""
	case "ParseAddress":
		id, err := ParseAddress(v.Input)
		if err != nil {
			return nil, identityErrName(err)
		}
		return map[string]string{"id": id.String()}, ""
	}
	return nil, "unknown function " + v.Function
}

func genIdentityVectors() vectors.File {
	seed := seedOf(0)
	id, err := FromSeed(seed, 22, testCreated)
	if err != nil {
		panic(err)
	}
	good := id.Public().Block
	flip := func(i int) string { b := bytes.Clone(good); b[i] ^= 1; return hex.EncodeToString(b) }
	badEnc, _ := block.ParsePubkey(good)
	for i := range badEnc.EncKey[:1184] {
		badEnc.EncKey[i] = 0xff
	}
	lowOrder, _ := block.ParsePubkey(good)
	clear(lowOrder.EncKey[block.EncKeySize-x25519ShareSize:])
	addr := id.Address()
	sub := func(i int, c byte) string { return addr[:i] + string(c) + addr[i+1:] }
	other := addr[10] ^ 1
	if !strings.ContainsRune("qpzry9x8gf2tvdw0s3jn54khce6mua7l", rune(other)) {
		other = 'q'
		if addr[10] == 'q' {
			other = 'p'
		}
	}
	kf := keyFileVectors()
	vs := []vectors.Vector{
		{Name: "from_seed", Function: "FromSeed", Input: hex.EncodeToString(seed[:]), Params: map[string]string{"difficulty": "22", "created": strconv.FormatInt(testCreated.Unix(), 10)}, Note: "key derivation (section 10) and pubkey layout (4.2) together"},
		{Name: "pubkey_block", Function: "ParsePubkey", Input: hex.EncodeToString(good)},
		{Name: "pubkey_flipped_signature", Function: "ParsePubkey", Input: flip(block.PubkeySize - 1), Error: "bad signature", Note: "the self-signature MUST verify"},
		{Name: "pubkey_flipped_difficulty", Function: "ParsePubkey", Input: flip(11), Error: "bad signature"},
		{Name: "pubkey_invalid_enc_key", Function: "ParsePubkey", Input: hex.EncodeToString(signedPubkey(id, badEnc)), Error: "invalid pubkey block", Note: "enc_key MUST deserialize"},
		{Name: "pubkey_low_order_x25519", Function: "ParsePubkey", Input: hex.EncodeToString(signedPubkey(id, lowOrder)), Error: "invalid pubkey block", Note: "the X25519 share of enc_key MUST NOT have low order (here all zero)"},
		{Name: "pubkey_small_order_sign_key", Function: "ParsePubkey", Input: hex.EncodeToString(forgedSmallOrder(good)), Error: "invalid pubkey block", Note: "sign_key MUST NOT be of small order: under the identity point this made-up self-signature verifies"},
		{Name: "address", Function: "ParseAddress", Input: addr},
		{Name: "address_upper_case", Function: "ParseAddress", Input: strings.ToUpper(addr)},
		{Name: "address_typo", Function: "ParseAddress", Input: sub(10, other), Error: "address has a typo", Note: "checksum mismatch MUST be rejected"},
		{Name: "address_bad_character", Function: "ParseAddress", Input: sub(10, 'b'), Error: "address has a typo"},
		{Name: "address_too_short", Function: "ParseAddress", Input: addr[:len(addr)-1], Error: "address has a typo"},
		{Name: "address_mixed_case", Function: "ParseAddress", Input: strings.ToUpper(addr[:5]) + addr[5:], Error: "not a flowmail address"},
		{Name: "address_other_prefix", Function: "ParseAddress", Input: "tb1" + addr[3:], Error: "not a flowmail address"},
		{Name: "address_bech32_not_m", Function: "ParseAddress", Input: bech32NotM(id.ID()), Error: "address has a typo", Note: "a bech32 (not bech32m) checksum MUST be rejected"},
	}
	vs = append(vs, kf...)
	return vectors.File{Description: "Identities, addresses and key files (docs/PROTOCOL.md sections 3, 4.2, 10). Key files are unprotected (kdf 0) so the vectors need no passphrase.", Vectors: vs}
}

func TestIdentityVectors(t *testing.T) {
	vectors.Check(t, "identity.json", genIdentityVectors, checkIdentityVector)
}

// keyFileVectors are unprotected key files of a rotated identity and its
// next key, made from fixed seeds, and the damage each MUST refuse.
func keyFileVectors() []vectors.Vector {
	src := bytes.NewReader(append(vectors.Pattern(64, 0x40), vectors.Pattern(64, 0x80)...))
	id, next, err := New(10, testCreated, src)
	if err != nil {
		panic(err)
	}
	if id, next, err = id.Rotate(next, 11, testCreated.Add(time.Hour), src); err != nil {
		panic(err)
	}
	clear := KeyFileOptions{NoPassphrase: true}
	idf, err := encodeKeyFile(id, clear)
	if err != nil {
		panic(err)
	}
	nf, err := seal(encodeNextKey(next), clear)
	if err != nil {
		panic(err)
	}
	seed := seedOf(0)
	v1 := append([]byte(keyFileMagicV1+"\x00"), seed[:]...)
	v1 = append(v1, 22)
	v1 = binary.BigEndian.AppendUint64(v1, uint64(testCreated.Unix()))
	hx := hex.EncodeToString
	set := func(b []byte, i int, v byte) string { c := bytes.Clone(b); c[i] = v; return hx(c) }
	const plainAt = len(keyFileMagic) + 1
	return []vectors.Vector{
		{Name: "key_file_rotated_identity", Function: "DecodeKeyFile", Input: hx(idf), Note: "identity key file, generation 1 with one retired key (section 10)"},
		{Name: "key_file_next_key", Function: "DecodeNextKeyFile", Input: hx(nf), Note: "next key file for generation 2"},
		{Name: "key_file_first_layout", Function: "DecodeKeyFile", Input: hx(v1), Note: "flowmail-key v1: a bare seed, read as FromSeed"},
		{Name: "key_file_next_as_identity", Function: "DecodeKeyFile", Input: hx(nf), Error: "key file holds another kind of key"},
		{Name: "key_file_identity_as_next", Function: "DecodeNextKeyFile", Input: hx(idf), Error: "key file holds another kind of key"},
		{Name: "key_file_unknown_role", Function: "DecodeKeyFile", Input: set(idf, plainAt, 3), Error: "not a valid flowmail key file"},
		{Name: "key_file_retired_count_beyond_generation", Function: "DecodeKeyFile", Input: set(idf, len(idf)-retiredSize-1, 2), Error: "not a valid flowmail key file", Note: "no more retired keys than rotations"},
		{Name: "key_file_trailing_byte", Function: "DecodeKeyFile", Input: hx(append(bytes.Clone(idf), 0)), Error: "not a valid flowmail key file"},
		{Name: "key_file_next_generation_0", Function: "DecodeNextKeyFile", Input: set(nf, len(nf)-1, 0), Error: "not a valid flowmail key file", Note: "a next key is for generation 1 or later"},
	}
}

// forgedSmallOrder rewrites a pubkey block to carry the identity point as
// its signing key and the signature (R = identity, S = 0), which
// ed25519.Verify accepts under that key for any message.
func forgedSmallOrder(good []byte) []byte {
	p, err := block.ParsePubkey(good)
	if err != nil {
		panic(err)
	}
	p.SignKey = [32]byte{1}
	p.Signature = [64]byte{1}
	return p.Encode()
}
