package bridge

import (
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/vectors"
)

// Vectors of docs/PROTOCOL.md 16.5 and 16.6: the derived password, the
// outbox's per-part randomness and the login file.

func checkBridgeVector(v vectors.Vector) (map[string]string, string) {
	switch v.Function {
	case "Password":
		var seed [identity.SeedSize]byte
		b, err := hex.DecodeString(v.Input)
		if err != nil || len(b) != len(seed) {
			return nil, "bad input"
		}
		copy(seed[:], b)
		id, err := identity.FromSeed(seed, 4, time.Unix(1772323200, 0))
		if err != nil {
			return nil, err.Error()
		}
		g, _ := strconv.ParseUint(v.Params["generation"], 10, 32)
		return map[string]string{"address": id.Address(), "password": Password(id, uint32(g))}, ""
	case "PartRand":
		var seed [32]byte
		b, err := hex.DecodeString(v.Input)
		if err != nil || len(b) != 32 {
			return nil, "bad input"
		}
		copy(seed[:], b)
		p, _ := strconv.Atoi(v.Params["part"])
		out := make([]byte, 48)
		io.ReadFull(partRand(seed, p), out)
		return map[string]string{"first_48_bytes": hex.EncodeToString(out)}, ""
	case "DecodeLoginFile":
		l, err := decodeLoginFile([]byte(v.Input))
		if err != nil {
			return nil, vectors.RuleName(err, ErrLoginFile)
		}
		return map[string]string{"generation": fmt.Sprint(l.Generation), "memory_kib": fmt.Sprint(l.Params.MemoryKiB), "passes": fmt.Sprint(l.Params.Passes), "lanes": fmt.Sprint(l.Params.Lanes)}, ""
	}
	return nil, "unknown function " + v.Function
}

func genBridgeVectors() vectors.File {
	seed := vectors.MustHex(vectors.Pattern(32, 7))
	salt, hash := vectors.MustHex(vectors.Pattern(16, 1)), vectors.MustHex(vectors.Pattern(32, 2))
	return vectors.File{Description: "The bridge's derived password, outbox randomness and login file (docs/PROTOCOL.md 16.5, 16.6).", Vectors: []vectors.Vector{
		{Name: "password_generation_0", Function: "Password", Input: seed, Params: map[string]string{"generation": "0"}, Note: "16.6"},
		{Name: "password_generation_1", Function: "Password", Input: seed, Params: map[string]string{"generation": "1"}, Note: "16.6: a reset gives another"},
		{Name: "outbox_rand_part_0", Function: "PartRand", Input: seed, Params: map[string]string{"part": "0"}, Note: "16.5"},
		{Name: "outbox_rand_part_1", Function: "PartRand", Input: seed, Params: map[string]string{"part": "1"}, Note: "16.5: each part its own"},
		{Name: "login_file", Function: "DecodeLoginFile", Input: "flowmail-bridge-login 1\ngeneration 3\nargon2id 65536 3 4 " + salt + " " + hash + "\n", Note: "16.6"},
		{Name: "login_file_too_costly", Function: "DecodeLoginFile", Input: "flowmail-bridge-login 1\ngeneration 3\nargon2id 5000000 3 4 " + salt + " " + hash + "\n", Error: "damaged login file", Note: "16.6: at most 4 GiB"},
		{Name: "login_file_short_hash", Function: "DecodeLoginFile", Input: "flowmail-bridge-login 1\ngeneration 3\nargon2id 65536 3 4 " + salt + " " + hash[:60] + "\n", Error: "damaged login file", Note: "16.6: 32-byte hash"},
	}}
}

func TestBridgeVectors(t *testing.T) {
	vectors.Check(t, "bridge_local.json", genBridgeVectors, checkBridgeVector)
}
