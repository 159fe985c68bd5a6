package blockstore

import (
	"fmt"
	"testing"
	"time"
)

func TestBudgetsDecayWithTheHalfLife(t *testing.T) {
	b := newBudgets(Config{NodeBudget: 1000, GroupBudget: 4000, BudgetHalfLife: time.Hour})
	now := time.Unix(1_800_000_000, 0)
	src := Source{Node: "n", Group: "g"}
	b.add(src, 800, now)
	if b.allows(src, 300, nil, now) {
		t.Fatal("800 + 300 bytes allowed under a node budget of 1000")
	}
	if !b.allows(src, 200, nil, now) {
		t.Fatal("800 + 200 bytes refused under a node budget of 1000")
	}
	if b.allows(src, 100, []charge{{src, 150}}, now) {
		t.Fatal("a pending charge of the same batch was not counted")
	}
	if !b.allows(Source{Node: "other", Group: "g"}, 900, nil, now) {
		t.Fatal("another node of the same group was refused within both budgets")
	}
	// One half-life later 400 bytes are left on the meter.
	if !b.allows(src, 600, nil, now.Add(time.Hour)) || b.allows(src, 601, nil, now.Add(time.Hour)) {
		t.Fatal("after one half-life the meter is not at half")
	}
	if !b.allows(Source{}, 1<<40, nil, now) {
		t.Fatal("the node itself (zero Source) has a budget")
	}
}

func TestBudgetsOverflowSharesOneMeter(t *testing.T) {
	b := newBudgets(Config{NodeBudget: 1000, BudgetHalfLife: time.Hour})
	now := time.Unix(1_800_000_000, 0)
	for i := range MaxMeteredSources {
		b.add(Source{Node: fmt.Sprint(i)}, 500, now)
	}
	// The table is full of live meters: new keys share the overflow one.
	for i := range 3 {
		src := Source{Node: fmt.Sprintf("new-%d", i)}
		if !b.allows(src, 300, nil, now) {
			t.Fatalf("new key %d refused with %d bytes in the overflow meter", i, 300*i)
		}
		b.add(src, 300, now)
	}
	if b.allows(Source{Node: "new-3"}, 101, nil, now) {
		t.Fatal("minted keys each got a budget of their own past the table's size")
	}
	if len(b.meters[kindNode]) != MaxMeteredSources {
		t.Fatalf("%d meters kept, want the cap %d", len(b.meters[kindNode]), MaxMeteredSources)
	}
	// Once the old meters decayed, a new key gets a meter of its own.
	later := now.Add(10 * time.Hour)
	b.add(Source{Node: "fresh"}, 10, later)
	if _, ok := b.meters[kindNode]["fresh"]; !ok {
		t.Fatal("decayed meters were not forgotten to make room")
	}
}
