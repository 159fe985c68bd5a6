package rendezvous

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/flowmail/flowmail/internal/vectors"
)

func hexBytes(s string) ([]byte, bool) {
	b, err := hex.DecodeString(s)
	return b, err == nil
}

func TestInfoHashVectors(t *testing.T) {
	vectors.Check(t, "rendezvous_infohash.json", func() vectors.File {
		v := func(name, network, errName, note string) vectors.Vector {
			return vectors.Vector{Name: name, Function: "InfoHash", Input: hex.EncodeToString([]byte(network)), Error: errName, Note: note}
		}
		return vectors.File{
			Description: "Mainline rendezvous infohash of a network name: LH(\"" + Label + "\", network)[0:20] (docs/PROTOCOL.md, rendezvous). Input is the name's bytes.",
			Vectors: []vectors.Vector{
				v("flowmail", "flowmail", "", ""),
				v("one_byte", "x", "", "shortest name"),
				v("max_len", strings.Repeat("n", MaxNetworkLen), "", "longest name, 32 bytes"),
				v("empty", "", "network_len", "network name MUST be 1 to 32 bytes"),
				v("too_long", strings.Repeat("n", MaxNetworkLen+1), "network_len", "network name MUST be 1 to 32 bytes"),
			},
		}
	}, func(v vectors.Vector) (map[string]string, string) {
		b, ok := hexBytes(v.Input)
		if !ok {
			return nil, "bad hex"
		}
		ih, err := InfoHash(string(b))
		if err != nil {
			return nil, peerErrName(err)
		}
		return map[string]string{"infohash": hex.EncodeToString(ih[:])}, ""
	})
}
