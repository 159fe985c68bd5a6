package blockstore

import (
	"math"
	"sync"
	"time"
)

// budgets meter, per source key, the bytes a store wrote for it; a meter
// halves every half-life. A source whose meter would pass its budget may
// no longer make the store evict other blocks: its Put is refused with
// ErrOverBudget instead (docs/PROTOCOL.md section 5.2). Blocks that fit
// in free room are always taken, and charged.
//
// Meters live in memory: a restart forgets them (and so gives a flooding
// source one more budget's worth). Each kind keeps at most MaxMeteredSources
// keys; a new key that finds the table full of live meters shares one
// overflow meter with every other such key, so minting keys (throwaway
// node IDs) buys no more than one budget.
type budgets struct {
	halfLife time.Duration
	limit    [sourceKinds]float64 // bytes; 0: no budget for that kind

	mu       sync.Mutex
	meters   [sourceKinds]map[string]meter
	overflow [sourceKinds]meter
}

const (
	kindNode = iota
	kindGroup
	sourceKinds
)

// MaxMeteredSources bounds the keys a store meters per kind.
const MaxMeteredSources = 4096

// meter is a byte count as of a time; it decays from then on.
type meter struct {
	bytes float64
	at    time.Time
}

func (m meter) value(now time.Time, halfLife time.Duration) float64 {
	if dt := now.Sub(m.at); dt > 0 && m.bytes > 0 {
		return m.bytes * math.Exp2(-float64(dt)/float64(halfLife))
	}
	return m.bytes
}

func newBudgets(cfg Config) *budgets {
	b := &budgets{halfLife: cfg.BudgetHalfLife}
	for kind, limit := range [sourceKinds]int64{cfg.NodeBudget, cfg.GroupBudget} {
		b.limit[kind] = float64(max(limit, 0))
		b.meters[kind] = make(map[string]meter)
	}
	return b
}

func (s Source) keys() [sourceKinds]string { return [sourceKinds]string{s.Node, s.Group} }

// charge is a Put not yet committed: the writer weighs a batch's charges
// before it commits them.
type charge struct {
	src  Source
	size int64
}

// allows reports whether src may have size more bytes written on top of
// its meters and of pending (charges of the same batch), at now.
func (b *budgets) allows(src Source, size int64, pending []charge, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for kind, key := range src.keys() {
		if key == "" || b.limit[kind] == 0 {
			continue
		}
		used := b.meterLocked(kind, key).value(now, b.halfLife)
		for _, p := range pending {
			if p.src.keys()[kind] == key {
				used += float64(p.size)
			}
		}
		if used+float64(size) > b.limit[kind] {
			return false
		}
	}
	return true
}

// add charges size bytes to every key of src.
func (b *budgets) add(src Source, size int64, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for kind, key := range src.keys() {
		if key == "" || b.limit[kind] == 0 {
			continue
		}
		m := b.meterLocked(kind, key)
		m = meter{bytes: m.value(now, b.halfLife) + float64(size), at: now}
		if _, ok := b.meters[kind][key]; ok || b.room(kind, now) {
			b.meters[kind][key] = m
		} else {
			b.overflow[kind] = m
		}
	}
}

// meterLocked is key's meter, or the overflow meter when key has none and
// the table is full.
func (b *budgets) meterLocked(kind int, key string) meter {
	if m, ok := b.meters[kind][key]; ok {
		return m
	}
	if len(b.meters[kind]) >= MaxMeteredSources {
		return b.overflow[kind]
	}
	return meter{}
}

// room makes room for one more key of kind if the table is full, by
// forgetting meters that decayed below 1/64 of the budget.
func (b *budgets) room(kind int, now time.Time) bool {
	if len(b.meters[kind]) < MaxMeteredSources {
		return true
	}
	for key, m := range b.meters[kind] {
		if m.value(now, b.halfLife) < b.limit[kind]/64 {
			delete(b.meters[kind], key)
		}
	}
	return len(b.meters[kind]) < MaxMeteredSources
}
