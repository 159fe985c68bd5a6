package identity

import (
	"time"

	"github.com/btcsuite/btcd/btcutil/bech32"

	"github.com/flowmail/flowmail/block"
)

func timeUnix(s int64) time.Time { return time.Unix(s, 0) }

// bech32NotM encodes id with the original bech32 checksum, which flowmail
// must refuse.
func bech32NotM(id block.ID) string {
	data, _ := bech32.ConvertBits(id[:], 8, 5, true)
	s, _ := bech32.Encode(AddressPrefix, data)
	return s
}
