package blockstore

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
)

// diskUse sums the files of dir: their sizes, and the bytes the file
// system allocated for them (Badger preallocates sparse files: the second
// is what fills a disk).
func diskUse(t testing.TB, dir string) (apparent, allocated int64) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		apparent += info.Size()
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			allocated += st.Blocks * 512
		} else {
			allocated += info.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return apparent, allocated
}

func TestReplayFloodAddsNoDisk(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock(time.Now())
	s := openDir(t, dir, Config{Clock: clock, QuotaBytes: 64 << 20})
	ctx := t.Context()
	seed := testSeed(t)
	fx := newFixtures(seed)
	var blocks [][]byte
	for range 64 {
		b, _ := fx.data(64 << 10)
		if _, err := s.Put(ctx, b, block.MaxLifetime, PutOptions{Source: Source{Node: "a", Group: "g"}}); err != nil {
			t.Fatal(err)
		}
		blocks = append(blocks, b)
	}
	_, before := diskUse(t, dir)
	version := s.(*badgerStore).db.MaxVersion()
	// Each replay asks for the longest lifetime, a little later each time:
	// the expiry would move by seconds, never by MinExtension.
	var wg sync.WaitGroup
	for w := range 4 {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		wg.Go(func() {
			for i := range 5000 {
				if w == 0 && i%50 == 0 {
					clock.Advance(time.Second)
				}
				b := blocks[(i*7+w)%len(blocks)]
				if _, err := s.Put(ctx, b, block.MaxLifetime, PutOptions{Source: Source{Node: fmt.Sprint(rng.IntN(1000)), Group: "g"}}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	_, after := diskUse(t, dir)
	if v := s.(*badgerStore).db.MaxVersion(); v != version {
		t.Fatalf("20,000 replays committed %d transactions, want none", v-version)
	}
	if after != before {
		t.Fatalf("20,000 replays moved the disk use from %d to %d bytes", before, after)
	}
}

// TestJunkFloodKeepsDiskNearQuota floods a store from many sources (an
// attacker with many IP groups, so budgets do not stop it) with eight
// times its quota of blocks that each evict others, and checks after every
// eighth of the flood that the directory holds at most 1.5x the quota.
func TestJunkFloodKeepsDiskNearQuota(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 8x a 16 MiB quota")
	}
	const quota = 16 << 20
	const size = 64 << 10
	dir := t.TempDir()
	seed := testSeed(t)
	fx := newFixtures(seed)
	s := openDir(t, dir, Config{Self: fx.id(), QuotaBytes: quota})
	ctx := t.Context()
	m := newBlockMakerSize(seed, size)
	const n = 8 * quota / size
	var worst int64
	var next sync.Mutex
	i := 0
	for round := range 8 {
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for {
					next.Lock()
					k := i
					i++
					next.Unlock()
					if k >= (round+1)*n/8 {
						return
					}
					src := Source{Node: fmt.Sprint(k), Group: fmt.Sprint(k % 1000)}
					_, err := s.Put(ctx, m.make(), time.Hour, PutOptions{Source: src})
					if err != nil && !errors.Is(err, ErrFull) {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		apparent, allocated := diskUse(t, dir)
		worst = max(worst, allocated)
		t.Logf("after %3d MiB of junk: %5.1f MiB allocated, %5.1f MiB apparent, %d blocks held", (round+1)*n/8*size>>20, float64(allocated)/(1<<20), float64(apparent)/(1<<20), s.Stats().Blocks)
	}
	if t.Failed() {
		return
	}
	if worst > quota*3/2 {
		t.Fatalf("the directory reached %.1f MiB under a flood, over 1.5x the %d MiB quota", float64(worst)/(1<<20), quota>>20)
	}
	if st := s.Stats(); st.Bytes > quota || st.Evicted == 0 {
		t.Fatalf("stats after the flood: %+v", st)
	}
}

// testFixtures returns fixtures for the n-th generator of a test, from
// its seed (testSeed): the default seed gives the generators the tests
// were written with.
func testFixtures(t testing.TB, n uint64) *fixtures {
	t.Helper()
	return newFixtures(n + 0x9e3779b97f4a7c15*(testSeed(t)-1))
}

// testSeed is the seed of a randomised test: FLOWMAIL_SEED when set, else
// a fixed one; it is logged, and printed again if the test fails.
func testSeed(t testing.TB) uint64 {
	t.Helper()
	seed := uint64(1)
	if v := os.Getenv("FLOWMAIL_SEED"); v != "" {
		if _, err := fmt.Sscan(v, &seed); err != nil {
			t.Fatalf("FLOWMAIL_SEED=%q: %v", v, err)
		}
	}
	t.Logf("seed %d (replay: FLOWMAIL_SEED=%d go test -run '^%s$')", seed, seed, t.Name())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("failed with seed %d", seed)
		}
	})
	return seed
}
