package onion

import (
	"testing"
	"time"
)

func TestHoldQueueEvictsLessWorkForMore(t *testing.T) {
	h := holdQueue{max: 2}
	at := func(m int) Output { return Output{At: testNow.Add(time.Duration(m) * time.Minute)} }
	if !h.add(held{out: at(3), work: 4, seq: 1}) || !h.add(held{out: at(1), work: 2, seq: 2}) {
		t.Fatal("room refused")
	}
	if h.add(held{out: at(2), work: 2, seq: 3}) {
		t.Fatal("equal work took a place")
	}
	if !h.add(held{out: at(2), work: 7, seq: 4}) {
		t.Fatal("more work refused")
	}
	// Left: work 4 due at +3 and work 7 due at +2, released in time order.
	o, ok := h.due(testNow.Add(time.Hour))
	if !ok || !o.At.Equal(at(2).At) {
		t.Fatalf("first due %v", o.At)
	}
	o, ok = h.due(testNow.Add(time.Hour))
	if !ok || !o.At.Equal(at(3).At) {
		t.Fatalf("second due %v", o.At)
	}
	if _, ok := h.due(testNow.Add(time.Hour)); ok {
		t.Fatal("evicted packet came back")
	}
}

func TestWorkQueueOrdersByWorkThenArrival(t *testing.T) {
	q := workQueue{max: 4}
	for i, w := range []int{3, 5, 3, 1} {
		if d := q.push(queued{work: w, seq: uint64(i)}); d != nil {
			t.Fatalf("dropped with room: %+v", d)
		}
	}
	if d := q.push(queued{work: 1, seq: 9}); d == nil || d.seq != 9 {
		t.Fatalf("equal least work at a full queue dropped %+v, want the newcomer", d)
	}
	var got []uint64
	for {
		p, ok := q.pop()
		if !ok {
			break
		}
		got = append(got, p.seq)
	}
	if len(got) != 4 || got[0] != 1 || got[1] != 0 || got[2] != 2 || got[3] != 3 {
		t.Fatalf("served %v, want [1 0 2 3]", got)
	}
}
