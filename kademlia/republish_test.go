package kademlia

import (
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/blockstore"
)

// TestDataBlocksWaitTheirOwnInterval: a STORE gives every block a date an
// hour ahead (the handler does not look at the type), but a data block
// falls due only after ShardRepublishInterval, and one met after a
// restart gets a date spread over that interval.
func TestDataBlocksWaitTheirOwnInterval(t *testing.T) {
	f := newHandlerFixture(t, false)
	data := block.Data{Payload: []byte("a shard")}.Encode()
	wantStored(t, f.call(t, Store{Lifetime: 3 * 86400, Block: data}))
	m := blockstore.Meta{ID: block.Sum(data), Type: block.TypeData}
	k := blockstore.Meta{ID: block.ID{1}, Type: block.TypePubkey}
	f.d.repub.schedule(k.ID, f.now.Add(f.d.jitter(RepublishInterval)))
	start := f.now
	spread := func() time.Duration { return RepublishInterval / 2 }

	f.now = start.Add(RepublishInterval * 11 / 10)
	if due := f.d.repub.dueAmong([]blockstore.Meta{m, k}, f.now, spread); len(due) != 1 || due[0].ID != k.ID {
		t.Fatalf("after %v due: %v, want the pubkey block alone", f.now.Sub(start), due)
	}
	f.now = start.Add(block.ShardRepublishInterval * 9 / 10)
	if due := f.d.repub.dueAmong([]blockstore.Meta{m}, f.now, spread); len(due) != 0 {
		t.Fatalf("data block due after %v, before its interval", f.now.Sub(start))
	}
	f.now = start.Add(block.ShardRepublishInterval * 11 / 10)
	if due := f.d.repub.dueAmong([]blockstore.Meta{m}, f.now, spread); len(due) != 1 {
		t.Fatalf("data block not due after %v", f.now.Sub(start))
	}

	// Met without a date: half of RepublishInterval, stretched.
	f.d.repub.forget(m.ID)
	met := f.now
	f.d.repub.dueAmong([]blockstore.Meta{m}, met, spread)
	f.now = met.Add(block.ShardRepublishInterval/2 - time.Minute)
	if due := f.d.repub.dueAmong([]blockstore.Meta{m}, f.now, spread); len(due) != 0 {
		t.Fatalf("data block met after a restart due after %v", f.now.Sub(met))
	}
	f.now = met.Add(block.ShardRepublishInterval / 2)
	if due := f.d.repub.dueAmong([]blockstore.Meta{m}, f.now, spread); len(due) != 1 {
		t.Fatalf("data block met after a restart not due after %v", f.now.Sub(met))
	}
}
