package onion

import "fmt"

// ReplayEntries bounds the tags a relay remembers per epoch.
const ReplayEntries = 1 << 18

// replayCache remembers, per epoch, the replay tag of every layer a relay
// opened, with the first 8 bytes of the payload it came with. Since a
// packet names its epoch under the layer's tag and relays accept only
// three epochs, a tag need not be remembered longer: older epochs are
// forgotten whole. Memory is bounded by max tags per epoch; a full epoch
// refuses further packets (fail closed) until it leaves the window.
type replayCache struct {
	max    int
	epochs map[uint32]map[[16]byte]uint64
}

// windowed reports whether epoch e is accepted at current epoch cur.
func windowed(e, cur uint32) bool {
	return uint64(e)+1 >= uint64(cur) && uint64(e) <= uint64(cur)+1
}

// check records tag for epoch e at current epoch cur. A tag seen before
// with the same payload fingerprint is a replay; with another payload it
// is a reply block (or any header) used twice.
func (c *replayCache) check(cur, e uint32, tag [16]byte, fingerprint uint64) error {
	for old := range c.epochs {
		if !windowed(old, cur) {
			delete(c.epochs, old)
		}
	}
	if !windowed(e, cur) {
		return fmt.Errorf("%w: epoch %d at %d", ErrEpoch, e, cur)
	}
	m := c.epochs[e]
	if m == nil {
		if c.epochs == nil {
			c.epochs = make(map[uint32]map[[16]byte]uint64)
		}
		m = make(map[[16]byte]uint64)
		c.epochs[e] = m
	}
	if fp, ok := m[tag]; ok {
		if fp == fingerprint {
			return ErrReplay
		}
		return ErrReplyReused
	}
	if len(m) >= c.max {
		return fmt.Errorf("%w: %d tags in epoch %d", ErrReplayFull, len(m), e)
	}
	m[tag] = fingerprint
	return nil
}

// size is the number of tags remembered.
func (c *replayCache) size() int {
	n := 0
	for _, m := range c.epochs {
		n += len(m)
	}
	return n
}
