package block

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/flowmail/flowmail/internal/vectors"
)

var sentinels = []error{ErrTruncated, ErrTooLarge, ErrVersion, ErrType, ErrFlags, ErrTrailing, ErrEmpty, ErrWrongType, ErrNotAccepted, ErrPubkey, ErrSignature}

// errName names the protocol rule err breaks: its sentinel's text.
func errName(err error) string {
	return vectors.RuleName(err, sentinels...)
}

func headerOut(h Header, b []byte) map[string]string {
	out := map[string]string{
		"version": strconv.Itoa(int(h.Version)),
		"type":    h.Type.String(),
		"id":      Sum(b).String(),
	}
	if h.HasDeletion {
		out["deletion_hash"] = hex.EncodeToString(h.DeletionHash[:])
	}
	return out
}

func checkBlockVector(v vectors.Vector) (map[string]string, string) {
	b, err := hex.DecodeString(v.Input)
	if err != nil {
		return nil, "bad hex: " + err.Error()
	}
	// zero_pad_to keeps huge inputs out of the file: the input is a prefix
	// followed by zero bytes up to that total length.
	if n, ok := v.Params["zero_pad_to"]; ok {
		total, err := strconv.Atoi(n)
		if err != nil || total < len(b) {
			return nil, "bad zero_pad_to " + n
		}
		b = append(b, make([]byte, total-len(b))...)
	}
	switch v.Function {
	case "ParseHeader":
		h, rest, err := ParseHeader(b)
		if err != nil {
			return nil, errName(err)
		}
		out := headerOut(h, b)
		out["rest_len"] = strconv.Itoa(len(rest))
		return out, ""
	case "ParseData":
		d, err := ParseData(b)
		if err != nil {
			return nil, errName(err)
		}
		out := headerOut(d.Header, b)
		out["payload"] = hex.EncodeToString(d.Payload)
		return out, ""
	case "ParseIndex":
		x, err := ParseIndex(b)
		if err != nil {
			return nil, errName(err)
		}
		out := headerOut(x.Header, b)
		out["sealed_len"] = strconv.Itoa(len(x.Sealed))
		if x.Header.HasLocator {
			out["locator"] = x.Locator.String()
		}
		out["nonce"] = strconv.FormatUint(x.Nonce, 10)
		return out, ""
	case "Check":
		h, err := Check(b)
		if err != nil {
			return nil, errName(err)
		}
		return headerOut(h, b), ""
	case "ParsePubkeyLayout":
		p, err := ParsePubkey(b)
		if err != nil {
			return nil, errName(err)
		}
		return map[string]string{
			"id":         Sum(b).String(),
			"created":    strconv.FormatUint(p.Created, 10),
			"difficulty": strconv.Itoa(int(p.Difficulty)),
			"sign_key":   hex.EncodeToString(p.SignKey[:]),
			"next":       hex.EncodeToString(p.Next[:]),
		}, ""
	}
	return nil, "unknown function " + v.Function
}

func genBlockVectors() vectors.File {
	var del [32]byte
	copy(del[:], vectors.Pattern(32, 0xd0))
	delHash := DeletionHash(del)
	hdrDel := Header{Version: Version, Type: TypeData, HasDeletion: true, DeletionHash: delHash}

	data := Data{Payload: []byte("hello, shard")}.Encode()
	dataDel := Data{Header: hdrDel, Payload: vectors.Pattern(64, 1)}.Encode()
	idx := Index{Header: Header{HasDeletion: true, DeletionHash: delHash}, Sealed: vectors.Pattern(MinIndexSize-HeaderSizeWithDeletion-NonceSize+128, 9), Nonce: 0x0102030405060708}.Encode()

	var loc ID
	copy(loc[:], vectors.Pattern(32, 0x4c))
	idxLoc := Index{Header: Header{HasDeletion: true, DeletionHash: delHash, HasLocator: true}, Sealed: vectors.Pattern(MinIndexSize-HeaderSizeWithDeletion-NonceSize+128, 9), Locator: loc, Nonce: 0x0102030405060708}.Encode()

	// A pubkey layout with fixed fields; its signature is not checked here
	// (identity's vectors check signatures).
	pk := &Pubkey{Created: 1767225600, Difficulty: 22, KEM: KEMMLKEM768X25519, KDF: KDFHKDFSHA256, AEAD: AEADChaCha20Poly1305}
	copy(pk.SignKey[:], vectors.Pattern(32, 3))
	copy(pk.EncKey[:], vectors.Pattern(EncKeySize, 5))
	copy(pk.Next[:], vectors.Pattern(32, 11))
	copy(pk.Signature[:], vectors.Pattern(64, 7))
	pkb := pk.Encode()

	with := func(b []byte, i int, v byte) []byte {
		c := bytes.Clone(b)
		c[i] = v
		return c
	}
	hx := hex.EncodeToString
	vs := []vectors.Vector{
		{Name: "data_block", Function: "ParseData", Input: hx(data)},
		{Name: "data_block_with_deletion_hash", Function: "ParseData", Input: hx(dataDel)},
		{Name: "index_block", Function: "ParseIndex", Input: hx(idx)},
		{Name: "index_block_with_locator", Function: "ParseIndex", Input: hx(idxLoc), Note: "flags bit 1: the locator ID sits between sealed and the nonce (4.4, 21.2)"},
		{Name: "pubkey_layout", Function: "ParsePubkeyLayout", Input: hx(pkb)},
		{Name: "header_only_data", Function: "ParseHeader", Input: "010200"},

		{Name: "empty_input", Function: "ParseHeader", Input: "", Error: "truncated", Note: "a block has at least a 3-byte header"},
		{Name: "two_bytes", Function: "ParseHeader", Input: "0102", Error: "truncated"},
		{Name: "version_0", Function: "ParseHeader", Input: hx(with(data, 0, 0)), Error: "unsupported version", Note: "version MUST be 1"},
		{Name: "version_2", Function: "ParseHeader", Input: hx(with(data, 0, 2)), Error: "unsupported version"},
		{Name: "type_0", Function: "ParseHeader", Input: hx(with(data, 1, 0)), Error: "unknown type", Note: "unknown type MUST be rejected"},
		{Name: "type_5", Function: "ParseHeader", Input: hx(with(data, 1, 5)), Error: "unknown type"},
		{Name: "record_header", Function: "ParseHeader", Input: hx(with(data, 1, 4)), Note: "type 4 is a record (section 15)"},
		{Name: "record_not_content_addressed", Function: "Check", Input: hx(with(data, 1, 4)), Error: "type not accepted here", Note: "a record is not stored by its hash (section 15.4)"},
		{Name: "deletion_on_record", Function: "ParseHeader", Input: "010401" + strings.Repeat("ab", 32) + "01", Error: "invalid flags", Note: "a deletion hash MUST NOT appear on record blocks"},
		{Name: "reserved_flag_bit", Function: "ParseHeader", Input: hx(with(data, 2, 4)), Error: "invalid flags", Note: "flag bits other than 0 and 1 MUST be 0"},
		{Name: "deletion_flag_truncated_hash", Function: "ParseHeader", Input: "010201" + strings.Repeat("ab", 31), Error: "truncated"},
		{Name: "deletion_on_pubkey", Function: "ParseHeader", Input: hx(with(with(pkb, 2, 1), 3, 0)), Error: "invalid flags", Note: "a deletion hash MUST NOT appear on pubkey blocks"},
		{Name: "oversized", Function: "ParseHeader", Input: "010200", Params: map[string]string{"zero_pad_to": strconv.Itoa(MaxBlockSize + 1)}, Error: "too large", Note: "blocks over MaxBlockSize MUST be rejected"},
		{Name: "data_empty_payload", Function: "ParseData", Input: "010200", Error: "empty payload"},
		{Name: "data_parsed_as_index", Function: "ParseIndex", Input: hx(data), Error: "wrong type"},
		{Name: "index_without_deletion_hash", Function: "ParseIndex", Input: hx(append([]byte{1, 3, 0}, make([]byte, MinIndexSize)...)), Error: "invalid flags", Note: "an index block MUST carry a deletion hash"},
		{Name: "index_too_short", Function: "ParseIndex", Input: hx(idx[:MinIndexSize-1]), Error: "truncated", Note: "an index block under MinIndexSize MUST be rejected"},
		{Name: "index_with_locator_too_short", Function: "ParseIndex", Input: hx(idxLoc[:MinIndexSize+IDSize-1]), Error: "truncated", Note: "with a locator, MinIndexSize + 32 bytes at least"},
		{Name: "locator_on_data_block", Function: "ParseHeader", Input: hx(with(data, 2, 2)), Error: "invalid flags", Note: "flags bit 1 (locator) only on index blocks"},
		{Name: "pubkey_truncated", Function: "ParsePubkeyLayout", Input: hx(pkb[:PubkeySize-1]), Error: "truncated"},
		{Name: "pubkey_trailing_byte", Function: "ParsePubkeyLayout", Input: hx(append(bytes.Clone(pkb), 0)), Error: "trailing bytes", Note: "bytes after the last field MUST be rejected"},
		{Name: "pubkey_difficulty_33", Function: "ParsePubkeyLayout", Input: hx(with(pkb, 11, MaxDifficulty+1)), Error: "invalid pubkey block", Note: "difficulty at most MaxDifficulty"},
		{Name: "pubkey_wrong_kem", Function: "ParsePubkeyLayout", Input: hx(with(pkb, 13, 0x20)), Error: "invalid pubkey block", Note: "kem_id MUST be 0x647a"},
		{Name: "pubkey_wrong_kdf", Function: "ParsePubkeyLayout", Input: hx(with(pkb, 15, 2)), Error: "invalid pubkey block", Note: "kdf_id MUST be 0x0001"},
		{Name: "pubkey_wrong_aead", Function: "ParsePubkeyLayout", Input: hx(with(pkb, 17, 1)), Error: "invalid pubkey block", Note: "aead_id MUST be 0x0003"},
	}
	return vectors.File{Description: fmt.Sprintf("Block layouts (docs/PROTOCOL.md section 4). MaxBlockSize=%d.", MaxBlockSize), Vectors: vs}
}

func TestBlockVectors(t *testing.T) {
	vectors.Check(t, "block_layouts.json", genBlockVectors, checkBlockVector)
}
