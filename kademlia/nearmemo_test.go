package kademlia

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/transport"
)

func TestNearMemoIsBoundedAndForgets(t *testing.T) {
	var n nearMemo
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	idOf := func(i int) (id block.ID) {
		binary.BigEndian.PutUint64(id[:], uint64(i)+1)
		return id
	}
	cs := []transport.Contact{{ID: idOf(1 << 40)}}
	for i := range 3 * nearMemoEntries {
		n.remember(idOf(i), cs, i%2 == 1, now)
		if len(n.entries) > nearMemoEntries {
			t.Fatalf("%d entries after %d remembered, bound %d", len(n.entries), i+1, nearMemoEntries)
		}
	}
	last := idOf(3*nearMemoEntries - 1)
	if got, wide := n.take(last, now); len(got) != 1 || !wide {
		t.Fatalf("the newest entry is gone or lost its width: %v, wide %v", got, wide)
	}
	if got, _ := n.take(last, now); got != nil {
		t.Fatalf("an entry taken twice: %v", got)
	}
	old := idOf(1 << 30)
	n.remember(old, cs, false, now)
	if got, _ := n.take(old, now.Add(nearMemoTTL+time.Second)); got != nil {
		t.Fatalf("an entry older than %v was given: %v", nearMemoTTL, got)
	}
	n.remember(idOf(1<<31), nil, false, now)
	if got, _ := n.take(idOf(1<<31), now); got != nil {
		t.Fatalf("no contacts remembered, %v given", got)
	}
}
