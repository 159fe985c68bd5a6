package identity

import (
	"bytes"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/internal/vectors"
)

func identityErrName(err error) string {
	return vectors.RuleName(err, ErrAddressTypo, ErrAddressFormat, block.ErrSignature, block.ErrPubkey, block.ErrTruncated, block.ErrTrailing, block.ErrWrongType, block.ErrFlags, block.ErrType, block.ErrVersion)
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
	addr := id.Address()
	sub := func(i int, c byte) string { return addr[:i] + string(c) + addr[i+1:] }
	other := addr[10] ^ 1
	if !strings.ContainsRune("qpzry9x8gf2tvdw0s3jn54khce6mua7l", rune(other)) {
		other = 'q'
		if addr[10] == 'q' {
			other = 'p'
		}
	}
	vs := []vectors.Vector{
		{Name: "from_seed", Function: "FromSeed", Input: hex.EncodeToString(seed[:]), Params: map[string]string{"difficulty": "22", "created": strconv.FormatInt(testCreated.Unix(), 10)}, Note: "key derivation (section 10) and pubkey layout (4.2) together"},
		{Name: "pubkey_block", Function: "ParsePubkey", Input: hex.EncodeToString(good)},
		{Name: "pubkey_flipped_signature", Function: "ParsePubkey", Input: flip(block.PubkeySize - 1), Error: "bad signature", Note: "the self-signature MUST verify"},
		{Name: "pubkey_flipped_difficulty", Function: "ParsePubkey", Input: flip(11), Error: "bad signature"},
		{Name: "pubkey_invalid_enc_key", Function: "ParsePubkey", Input: hex.EncodeToString(signedPubkey(id, badEnc)), Error: "invalid pubkey block", Note: "enc_key MUST deserialize"},
		{Name: "address", Function: "ParseAddress", Input: addr},
		{Name: "address_upper_case", Function: "ParseAddress", Input: strings.ToUpper(addr)},
		{Name: "address_typo", Function: "ParseAddress", Input: sub(10, other), Error: "address has a typo", Note: "checksum mismatch MUST be rejected"},
		{Name: "address_bad_character", Function: "ParseAddress", Input: sub(10, 'b'), Error: "address has a typo"},
		{Name: "address_too_short", Function: "ParseAddress", Input: addr[:len(addr)-1], Error: "address has a typo"},
		{Name: "address_mixed_case", Function: "ParseAddress", Input: strings.ToUpper(addr[:5]) + addr[5:], Error: "not a flowmail address"},
		{Name: "address_other_prefix", Function: "ParseAddress", Input: "tb1" + addr[3:], Error: "not a flowmail address"},
		{Name: "address_bech32_not_m", Function: "ParseAddress", Input: bech32NotM(id.ID()), Error: "address has a typo", Note: "a bech32 (not bech32m) checksum MUST be rejected"},
	}
	return vectors.File{Description: "Identities and addresses (docs/PROTOCOL.md sections 3, 4.2, 10).", Vectors: vs}
}

func TestIdentityVectors(t *testing.T) {
	vectors.Check(t, "identity.json", genIdentityVectors, checkIdentityVector)
}
