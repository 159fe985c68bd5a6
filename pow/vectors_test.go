package pow

import (
	"context"
	"encoding/hex"
	"errors"
	"strconv"
	"testing"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/internal/vectors"
)

// ruleName names the rule a Verify or Solve input breaks, as vectors
// state it: the sentinel's text without the package prefix.
func ruleName(err error) string {
	return vectors.RuleName(err, ErrShortBlock, ErrDifficulty, errInsufficient)
}

// errInsufficient names the MUST of section 6 a block that Verify rejects
// breaks; Verify itself answers only yes or no.
var errInsufficient = errors.New("pow: insufficient proof of work")

func checkPowVector(v vectors.Vector) (map[string]string, string) {
	blk, err := hex.DecodeString(v.Input)
	if err != nil {
		return nil, "bad hex: " + err.Error()
	}
	tb, err := hex.DecodeString(v.Params["target"])
	if err != nil || len(tb) != block.IDSize {
		return nil, "bad target"
	}
	target := block.ID(tb)
	bits, err := strconv.Atoi(v.Params["bits"])
	if err != nil {
		return nil, "bad bits"
	}
	switch v.Function {
	case "Verify":
		ok := Verify(blk, target, bits)
		var why error
		switch {
		case len(blk) < block.NonceSize:
			why = ErrShortBlock
		case bits < 0 || bits > MaxBits:
			why = ErrDifficulty
		case block.CommonPrefixLen(refID(blk), target) < bits:
			why = errInsufficient
		}
		if ok != (why == nil) {
			return nil, "Verify says " + strconv.FormatBool(ok) + " against the reference"
		}
		if why != nil {
			return nil, ruleName(why)
		}
		id := block.Sum(blk)
		return map[string]string{"id": id.String(), "prefix_bits": strconv.Itoa(block.CommonPrefixLen(id, target))}, ""
	case "Solve":
		start, err := strconv.ParseUint(v.Params["start"], 10, 64)
		if err != nil {
			return nil, "bad start"
		}
		nonce, err := Solve(context.Background(), blk, target, bits, Options{Workers: 1, Start: start})
		if err != nil {
			return nil, ruleName(err)
		}
		return map[string]string{"nonce": strconv.FormatUint(nonce, 10), "id": block.Sum(blk).String()}, ""
	}
	return nil, "unknown function " + v.Function
}

func genPowVectors() vectors.File {
	target := block.ID(vectors.Pattern(block.IDSize, 0x5a))
	hx := hex.EncodeToString
	solved := func(blk []byte, bits int) []byte {
		if _, err := Solve(context.Background(), blk, target, bits, Options{Workers: 1}); err != nil {
			panic(err)
		}
		return blk
	}
	index := solved(vectors.Pattern(block.MinIndexSize, 1), 12)
	indexBits := block.CommonPrefixLen(block.Sum(index), target)
	twoChunks := solved(vectors.Pattern(120, 2), 10)
	ownID := block.Sum(index)
	params := func(t block.ID, bits int) map[string]string {
		return map[string]string{"target": t.String(), "bits": strconv.Itoa(bits)}
	}
	solveParams := func(bits int, start uint64) map[string]string {
		p := params(target, bits)
		p["start"] = strconv.FormatUint(start, 10)
		return p
	}
	vs := []vectors.Vector{
		{Name: "index_block_12_bits", Function: "Verify", Input: hx(index), Params: params(target, 12),
			Note: "an index block (1179 bytes, ≡ 27 mod 128) ground to 12 bits against the target"},
		{Name: "index_block_its_exact_prefix", Function: "Verify", Input: hx(index), Params: params(target, indexBits)},
		{Name: "index_block_one_bit_too_many", Function: "Verify", Input: hx(index), Params: params(target, indexBits+1), Error: "insufficient proof of work",
			Note: "section 6: a recipient MUST NOT act on an index block whose ID shares fewer than D leading bits with its address"},
		{Name: "two_compression_tail_10_bits", Function: "Verify", Input: hx(twoChunks), Params: params(target, 10),
			Note: "120 bytes: the padding needs a second SHA-512 chunk"},
		{Name: "own_id_256_bits", Function: "Verify", Input: hx(index), Params: params(ownID, 256)},
		{Name: "zero_bits_any_block", Function: "Verify", Input: hx(vectors.Pattern(8, 3)), Params: params(target, 0)},
		{Name: "block_shorter_than_nonce", Function: "Verify", Input: hx(vectors.Pattern(7, 4)), Params: params(target, 0), Error: "block shorter than its nonce",
			Note: "the last 8 bytes of a block are its nonce"},
		{Name: "negative_difficulty", Function: "Verify", Input: hx(index), Params: params(target, -1), Error: "difficulty outside 0..256"},
		{Name: "difficulty_257", Function: "Verify", Input: hx(index), Params: params(target, 257), Error: "difficulty outside 0..256"},

		{Name: "solve_index_block", Function: "Solve", Input: hx(vectors.Pattern(block.MinIndexSize, 1)), Params: solveParams(12, 0),
			Note: "one worker from nonce 0 returns the first nonce that meets the target"},
		{Name: "solve_from_start", Function: "Solve", Input: hx(vectors.Pattern(block.MinIndexSize+128, 5)), Params: solveParams(8, 1<<40)},
		{Name: "solve_two_compression_tail", Function: "Solve", Input: hx(vectors.Pattern(120, 2)), Params: solveParams(10, 0)},
		{Name: "solve_block_shorter_than_nonce", Function: "Solve", Input: hx(vectors.Pattern(7, 4)), Params: solveParams(1, 0), Error: "block shorter than its nonce"},
		{Name: "solve_difficulty_257", Function: "Solve", Input: hx(vectors.Pattern(64, 4)), Params: solveParams(257, 0), Error: "difficulty outside 0..256"},
	}
	return vectors.File{Description: "Proof of work (docs/PROTOCOL.md section 6): Verify(block, target, bits), and Solve with one worker from a start nonce. id is the block ID, prefix_bits the bits it shares with target.", Vectors: vs}
}

func TestPowVectors(t *testing.T) {
	vectors.Check(t, "pow_verify.json", genPowVectors, checkPowVector)
}
