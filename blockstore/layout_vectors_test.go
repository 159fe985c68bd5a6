package blockstore

import (
	"encoding/hex"
	"strconv"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/internal/vectors"
)

// genLayoutVectors gives 'b' values of layout 3 (docs/PROTOCOL.md 5.1):
// the 'm' value, then the block.
func genLayoutVectors() vectors.File {
	fx := newFixtures(21)
	data, _ := fx.data(40)
	plain := block.Data{Payload: []byte("no deletion hash")}.Encode()
	at := time.Unix(1_800_000_000, 0)
	rec := func(b []byte, pinned bool) record {
		h, _, _ := block.ParseHeader(b)
		return record{typ: h.Type, pinned: pinned, size: len(b), storedAt: at, expires: at.Add(time.Hour),
			sum: checksum(b), hasDeletion: h.HasDeletion, deletion: h.DeletionHash}
	}
	hx := hex.EncodeToString
	withDel := blockValue(rec(data, false), data)
	bad := func(v []byte, edit func([]byte) []byte) string { return hx(edit(append([]byte(nil), v...))) }
	vs := []vectors.Vector{
		{Name: "data_with_deletion_hash", Function: "DecodeBlockValue", Input: hx(withDel)},
		{Name: "data_pinned_no_deletion_hash", Function: "DecodeBlockValue", Input: hx(blockValue(rec(plain, true), plain))},
		{Name: "bare_block", Function: "DecodeBlockValue", Input: hx(data), Error: "stored bytes do not match their ID", Note: "a layout-2 'b' value (the block alone) does not decode"},
		{Name: "checksum_changed", Function: "DecodeBlockValue", Input: bad(withDel, func(v []byte) []byte { v[metaRecordSize-1] ^= 1; return v }), Error: "stored bytes do not match their ID", Note: "a read MUST detect bytes that changed since they were stored"},
		{Name: "block_bit_flipped", Function: "DecodeBlockValue", Input: bad(withDel, func(v []byte) []byte { v[len(v)-1] ^= 1; return v }), Error: "stored bytes do not match their ID"},
		{Name: "truncated", Function: "DecodeBlockValue", Input: bad(withDel, func(v []byte) []byte { return v[:len(v)-1] }), Error: "stored bytes do not match their ID"},
		{Name: "unknown_flag", Function: "DecodeBlockValue", Input: bad(withDel, func(v []byte) []byte { v[1] |= 0x80; return v }), Error: "stored bytes do not match their ID"},
	}
	return vectors.File{Description: "Badger store 'b' values, layout 3 (docs/PROTOCOL.md section 5.1, informative): type u8, flags u8, size u32, stored_at u64, expires u64 (Unix ns), XXH64 u64, [deletion hash], then the block.", Vectors: vs}
}

func TestLayoutVectors(t *testing.T) {
	vectors.Check(t, "blockstore_layout.json", genLayoutVectors, func(v vectors.Vector) (map[string]string, string) {
		in, err := hex.DecodeString(v.Input)
		if err != nil {
			return nil, "unexpected: input: " + err.Error()
		}
		r, b, err := decodeBlockValue(in)
		if err != nil {
			return nil, storeErrName(err)
		}
		out := map[string]string{
			"type":      strconv.Itoa(int(r.typ)),
			"pinned":    strconv.FormatBool(r.pinned),
			"size":      strconv.Itoa(r.size),
			"stored_at": strconv.FormatInt(r.storedAt.UnixNano(), 10),
			"expires":   strconv.FormatInt(r.expires.UnixNano(), 10),
			"xxh64":     strconv.FormatUint(r.sum, 16),
			"block":     hex.EncodeToString(b),
		}
		if r.hasDeletion {
			out["deletion_hash"] = hex.EncodeToString(r.deletion[:])
		}
		return out, ""
	})
}
