package onion

import (
	"container/heap"
	"sort"
	"time"
)

// queued is a packet waiting for its layer to be opened.
type queued struct {
	pkt  []byte
	work int
	seq  uint64 // arrival order: among equal work, first come first served
	src  string // the source named to ReceiveFrom
}

// workQueue holds at most max packets in order of work (most first, then
// oldest first). A packet arriving at a full queue takes the place of the
// one with least work (the newest among equals) if it carries more, else
// it is the one dropped: Tor's effort-ordered queue, not a threshold.
type workQueue struct {
	max   int
	items []queued // sorted: items[0] is served next
}

func (q *workQueue) less(a, b queued) bool {
	if a.work != b.work {
		return a.work > b.work
	}
	return a.seq < b.seq
}

// push inserts p and reports the packet dropped to make room, if any
// (possibly p itself).
func (q *workQueue) push(p queued) (dropped *queued) {
	if len(q.items) >= q.max {
		last := q.items[len(q.items)-1]
		if p.work <= last.work {
			return &p
		}
		q.items = q.items[:len(q.items)-1]
		dropped = &last
	}
	i := sort.Search(len(q.items), func(i int) bool { return q.less(p, q.items[i]) })
	q.items = append(q.items, queued{})
	copy(q.items[i+1:], q.items[i:])
	q.items[i] = p
	return dropped
}

func (q *workQueue) pop() (queued, bool) {
	if len(q.items) == 0 {
		return queued{}, false
	}
	p := q.items[0]
	q.items[0] = queued{}
	q.items = q.items[1:]
	return p, true
}

// held is a peeled packet waiting out its delay.
type held struct {
	out  Output
	work int
	seq  uint64
}

// holdQueue is a min-heap of held packets by due time, bounded: when full
// the one with least work (the newest among equals) is dropped.
type holdQueue struct {
	max   int
	items []held
}

func (h *holdQueue) Len() int { return len(h.items) }
func (h *holdQueue) Less(i, j int) bool {
	a, b := h.items[i], h.items[j]
	if !a.out.At.Equal(b.out.At) {
		return a.out.At.Before(b.out.At)
	}
	return a.seq < b.seq
}
func (h *holdQueue) Swap(i, j int) { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *holdQueue) Push(x any)    { h.items = append(h.items, x.(held)) }
func (h *holdQueue) Pop() any {
	n := len(h.items) - 1
	x := h.items[n]
	h.items[n] = held{}
	h.items = h.items[:n]
	return x
}

// add holds p and reports whether it was kept; a full queue drops the
// least-work packet, p or another.
func (h *holdQueue) add(p held) (kept bool) {
	if len(h.items) >= h.max {
		worst := 0
		for i, x := range h.items {
			w := h.items[worst]
			if x.work < w.work || (x.work == w.work && x.seq > w.seq) {
				worst = i
			}
		}
		if w := h.items[worst]; p.work <= w.work {
			return false
		}
		heap.Remove(h, worst)
	}
	heap.Push(h, p)
	return true
}

// due pops the earliest packet if its time has come.
func (h *holdQueue) due(now time.Time) (Output, bool) {
	if len(h.items) == 0 || h.items[0].out.At.After(now) {
		return Output{}, false
	}
	return heap.Pop(h).(held).out, true
}

func (h *holdQueue) next() (time.Time, bool) {
	if len(h.items) == 0 {
		return time.Time{}, false
	}
	return h.items[0].out.At, true
}
