package mail

import (
	"errors"
	"fmt"

	"github.com/flowmail/flowmail/block"
)

// ErrLocator is a locator block that breaks spec 21.2.
var ErrLocator = errors.New("mail: bad locator block")

// LocatorBlock returns the locator block of a mail whose shards are ids
// (spec 21.2): a data block without a deletion hash whose payload is the
// shard IDs in the manifest's order. It says which blocks a mail needs
// and nothing else, so a delegate can hold them without any key.
func LocatorBlock(ids []block.ID) []byte {
	p := make([]byte, 0, len(ids)*block.IDSize)
	for _, id := range ids {
		p = append(p, id[:]...)
	}
	return block.Data{Payload: p}.Encode()
}

// ParseLocator decodes a locator block: a data block without a deletion
// hash holding 2 to MaxShards shard IDs (a mail has at least one group
// of 2 data shards).
func ParseLocator(b []byte) ([]block.ID, error) {
	d, err := block.ParseData(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLocator, err)
	}
	n := len(d.Payload) / block.IDSize
	switch {
	case d.Header.HasDeletion:
		return nil, fmt.Errorf("%w: it carries a deletion hash", ErrLocator)
	case len(d.Payload)%block.IDSize != 0:
		return nil, fmt.Errorf("%w: %d payload bytes are not whole IDs", ErrLocator, len(d.Payload))
	case n < 2 || n > MaxShards:
		return nil, fmt.Errorf("%w: %d shard IDs, want 2 to %d", ErrLocator, n, MaxShards)
	}
	ids := make([]block.ID, n)
	for i := range ids {
		copy(ids[i][:], d.Payload[i*block.IDSize:])
	}
	return ids, nil
}
