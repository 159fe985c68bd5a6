package server

import (
	"context"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
)

// recordingDHT is a Fallback that says which delete it was asked for.
type recordingDHT struct{ calls []string }

func (r *recordingDHT) Put(context.Context, []byte, time.Duration) error { return nil }
func (r *recordingDHT) Get(context.Context, block.ID) ([]byte, error)    { return nil, nil }
func (r *recordingDHT) List(context.Context, block.ID, int, time.Time) ([]block.ID, error) {
	return nil, nil
}
func (r *recordingDHT) Delete(context.Context, block.ID, [32]byte) error {
	r.calls = append(r.calls, "Delete")
	return nil
}

// dataDHT can also delete a block it is told is a data block.
type dataDHT struct{ recordingDHT }

func (r *dataDHT) DeleteData(context.Context, block.ID, [32]byte) error {
	r.calls = append(r.calls, "DeleteData")
	return nil
}

// TestHeldNetworkDeletesShardsAsDataBlocks: a fetch through a delegated
// server deletes a mail's shards at their R holders when its DHT can
// (DataDeleter), as a fetch from the DHT does, and falls back to Delete
// when it cannot.
func TestHeldNetworkDeletesShardsAsDataBlocks(t *testing.T) {
	var _ delivery.DataDeleter = (*HeldNetwork)(nil)
	ctx := t.Context()
	d := &dataDHT{}
	if err := (&HeldNetwork{DHT: d}).DeleteData(ctx, block.ID{1}, [32]byte{}); err != nil || len(d.calls) != 1 || d.calls[0] != "DeleteData" {
		t.Fatalf("with a DHT that deletes data blocks: calls %v, err %v; want DeleteData", d.calls, err)
	}
	r := &recordingDHT{}
	if err := (&HeldNetwork{DHT: r}).DeleteData(ctx, block.ID{1}, [32]byte{}); err != nil || len(r.calls) != 1 || r.calls[0] != "Delete" {
		t.Fatalf("with a DHT that only deletes: calls %v, err %v; want Delete", r.calls, err)
	}
	if err := (&HeldNetwork{}).DeleteData(ctx, block.ID{1}, [32]byte{}); err != nil {
		t.Fatalf("without a DHT: %v", err)
	}
}
