package blockstore

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/clock"
)

// fixtures builds valid blocks from a seeded generator, so a failing test
// replays.
type fixtures struct {
	mu  sync.Mutex
	rng *rand.Rand
}

func newFixtures(seed uint64) *fixtures {
	return &fixtures{rng: rand.New(rand.NewPCG(seed, 0x666c6f776d61696c))}
}

func (f *fixtures) fill(b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range b {
		b[i] = byte(f.rng.Uint32())
	}
}

func (f *fixtures) preimage() [32]byte {
	var p [32]byte
	f.fill(p[:])
	return p
}

func (f *fixtures) id() block.ID {
	var id block.ID
	f.fill(id[:])
	return id
}

// data returns a data block of exactly size bytes (at least 36) that can be
// deleted with the returned preimage.
func (f *fixtures) data(size int) ([]byte, [32]byte) {
	pre := f.preimage()
	payload := make([]byte, size-block.HeaderSizeWithDeletion)
	f.fill(payload)
	h := block.Header{HasDeletion: true, DeletionHash: block.DeletionHash(pre)}
	return block.Data{Header: h, Payload: payload}.Encode(), pre
}

// index returns an index block of the minimum size with random contents
// (the store does not open it).
func (f *fixtures) index() ([]byte, [32]byte) {
	pre := f.preimage()
	sealed := make([]byte, block.MinIndexSize-block.HeaderSizeWithDeletion-block.NonceSize)
	f.fill(sealed)
	h := block.Header{HasDeletion: true, DeletionHash: block.DeletionHash(pre)}
	f.mu.Lock()
	nonce := f.rng.Uint64()
	f.mu.Unlock()
	return block.Index{Header: h, Sealed: sealed, Nonce: nonce}.Encode(), pre
}

func pubkeyBlock(t testing.TB) []byte {
	t.Helper()
	id, err := identity.Generate(block.DefaultDifficulty, time.Unix(1_800_000_000, 0))
	if err != nil {
		t.Fatal(err)
	}
	return id.Public().Block
}

// fakeClock is a Config.Clock whose Now moves only when told to; its
// timers and tickers run on real time.
type fakeClock struct {
	clock.Real
	mu  sync.Mutex
	now time.Time
}

func newFakeClock(start time.Time) *fakeClock { return &fakeClock{now: start} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
