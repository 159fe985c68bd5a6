package rendezvous

import (
	"errors"
	"fmt"

	"github.com/flowmail/flowmail/block"
)

// Label is the labelled-hash label of the rendezvous infohash.
const Label = "flowmail/v1 rendezvous"

// MaxNetworkLen is the longest network name, as in the transport HELLO.
const MaxNetworkLen = 32

// ErrNetworkLen is returned for a network name that is empty or longer
// than MaxNetworkLen bytes.
var ErrNetworkLen = errors.New("rendezvous: network_len")

// InfoHash returns the 20-byte mainline infohash under which nodes of the
// named flowmail network meet: LH(Label, network)[0:20].
func InfoHash(network string) ([20]byte, error) {
	var ih [20]byte
	if len(network) < 1 || len(network) > MaxNetworkLen {
		return ih, fmt.Errorf("%w: network name is %d bytes, want 1 to %d", ErrNetworkLen, len(network), MaxNetworkLen)
	}
	h := block.LabeledHash(Label, []byte(network))
	copy(ih[:], h[:20])
	return ih, nil
}
