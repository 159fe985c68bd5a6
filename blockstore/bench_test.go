package blockstore

import (
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/flowmail/flowmail/block"
)

// Benchmarks compare the store with plain Badger under the same options
// (badgerOptions: SyncWrites on) and the same concurrency, so results read
// as ratios:
//
//	go test -run '^$' -bench '4KiB' -benchtime=1s -count=3 ./blockstore
const (
	benchBlockSize = 4096
	// putParallelism × GOMAXPROCS goroutines put at once, so concurrent
	// commits share a sync in both the store and plain Badger.
	putParallelism = 8
	// benchHeld is how many blocks the Get benchmarks read from.
	benchHeld = 10_000
)

// blockMaker makes distinct valid data blocks cheaply: one random block,
// a counter in its last bytes. They share one deletion preimage.
type blockMaker struct {
	base     []byte
	preimage [32]byte
	next     atomic.Uint64
}

func newBlockMaker(seed uint64) *blockMaker { return newBlockMakerSize(seed, benchBlockSize) }

func newBlockMakerSize(seed uint64, size int) *blockMaker {
	b, pre := newFixtures(seed).data(size)
	return &blockMaker{base: b, preimage: pre}
}

func (m *blockMaker) make() []byte {
	b := append([]byte(nil), m.base...)
	binary.BigEndian.PutUint64(b[len(b)-8:], m.next.Add(1))
	return b
}

func openRawBadger(b *testing.B) *badger.DB {
	b.Helper()
	db, err := badger.Open(badgerOptions(b.TempDir(), Config{}.withDefaults()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// rawPut is the plain-Badger equivalent of a Put: one key, the block, a TTL.
func rawPut(db *badger.DB, key, value []byte) error {
	return db.Update(func(txn *badger.Txn) error {
		return txn.SetEntry(badger.NewEntry(key, value).WithTTL(time.Hour))
	})
}

func rawKey(n uint64) []byte {
	var k [1 + block.IDSize]byte
	k[0] = familyBlock
	binary.BigEndian.PutUint64(k[1:], n)
	binary.BigEndian.PutUint64(k[25:], n*0x9e3779b97f4a7c15)
	return k[:]
}

// putParallel stores distinct 4 KiB blocks with put from
// putParallelism goroutines per core.
func putParallel(b *testing.B, put func(v []byte) error) {
	m := newBlockMaker(1)
	b.SetBytes(benchBlockSize)
	b.ReportAllocs()
	b.SetParallelism(putParallelism)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := put(m.make()); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkPut4KiB(b *testing.B) {
	s := openBadgerB(b)
	putParallel(b, func(v []byte) error {
		_, err := s.Put(b.Context(), v, time.Hour, PutOptions{})
		return err
	})
}

func BenchmarkRawBadgerPut4KiB(b *testing.B) {
	db := openRawBadger(b)
	putParallel(b, func(v []byte) error {
		return rawPut(db, rawKey(binary.BigEndian.Uint64(v[len(v)-8:])), v)
	})
}

func openBadgerB(b *testing.B) Store {
	b.Helper()
	s, err := OpenBadger(b.TempDir(), Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// fill stores n blocks with put from putParallelism goroutines per core
// and returns their keys.
func fill[K any](b *testing.B, n int, m *blockMaker, put func(v []byte) (K, error)) []K {
	b.Helper()
	keys := make([]K, n)
	var wg sync.WaitGroup
	var next atomic.Int64
	for range putParallelism * 2 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				k, err := put(m.make())
				if err != nil {
					b.Error(err)
					return
				}
				keys[i] = k
			}
		})
	}
	wg.Wait()
	return keys
}

// getParallel reads random keys from putParallelism goroutines per core,
// for the store and plain Badger alike: the store reads a block's
// metadata beside it and checks the block's checksum. Requests come in
// concurrently in a node too (many peers fetching); getSerial shows the
// one-goroutine figure beside it.
func getParallel[K any](b *testing.B, keys []K, get func(K) ([]byte, error)) {
	b.SetBytes(benchBlockSize)
	b.ReportAllocs()
	b.SetParallelism(putParallelism)
	b.ResetTimer()
	var seed atomic.Uint64
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(seed.Add(1), 0))
		for pb.Next() {
			v, err := get(keys[rng.IntN(len(keys))])
			if err != nil || len(v) != benchBlockSize {
				b.Errorf("got %d bytes, err %v", len(v), err)
				return
			}
		}
	})
}

// getSerial reads random keys from one goroutine.
func getSerial[K any](b *testing.B, keys []K, get func(K) ([]byte, error)) {
	b.SetBytes(benchBlockSize)
	b.ReportAllocs()
	rng := rand.New(rand.NewPCG(1, 0))
	for b.Loop() {
		v, err := get(keys[rng.IntN(len(keys))])
		if err != nil || len(v) != benchBlockSize {
			b.Fatalf("got %d bytes, err %v", len(v), err)
		}
	}
}

func BenchmarkGet4KiB(b *testing.B) {
	s := openBadgerB(b)
	ids := fill(b, benchHeld, newBlockMaker(2), func(v []byte) (block.ID, error) {
		return s.Put(b.Context(), v, time.Hour, PutOptions{})
	})
	get := func(id block.ID) ([]byte, error) {
		v, _, err := s.Get(b.Context(), id)
		return v, err
	}
	b.Run("random", func(b *testing.B) { getParallel(b, ids, get) })
	b.Run("random-serial", func(b *testing.B) { getSerial(b, ids, get) })
}

func BenchmarkRawBadgerGet4KiB(b *testing.B) {
	db := openRawBadger(b)
	keys := fill(b, benchHeld, newBlockMaker(2), func(v []byte) ([]byte, error) {
		k := rawKey(binary.BigEndian.Uint64(v[len(v)-8:]))
		return k, rawPut(db, k, v)
	})
	get := func(k []byte) (v []byte, err error) {
		err = db.View(func(txn *badger.Txn) error {
			item, err := txn.Get(k)
			if err != nil {
				return err
			}
			v, err = item.ValueCopy(nil)
			return err
		})
		return v, err
	}
	b.Run("random", func(b *testing.B) { getParallel(b, keys, get) })
	b.Run("random-serial", func(b *testing.B) { getSerial(b, keys, get) })
}

// BenchmarkBlockSum4KiB is a full re-verification of one block from all
// cores: what every Get paid before the checksum (layout 1).
func BenchmarkBlockSum4KiB(b *testing.B) {
	v := newBlockMaker(3).make()
	b.SetBytes(benchBlockSize)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if block.Sum(v).IsZero() {
				b.Error("zero ID")
			}
		}
	})
}

// BenchmarkSumMany4KiB computes IDs of blocks in full batches of
// block.Lanes(), from all cores; an op is one block, as in
// BenchmarkBlockSum4KiB (the README's SumMany figure; the store itself no
// longer hashes what it reads).
func BenchmarkSumMany4KiB(b *testing.B) {
	m := newBlockMaker(4)
	blocks := make([][]byte, block.Lanes())
	for i := range blocks {
		blocks[i] = m.make()
	}
	b.SetBytes(benchBlockSize)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ids := make([]block.ID, len(blocks))
		for {
			// Claim a whole batch of ops, or what is left of b.N.
			n := 0
			for n < len(blocks) && pb.Next() {
				n++
			}
			if n == 0 {
				return
			}
			block.SumMany(blocks[:n], ids[:n])
			if ids[0].IsZero() {
				b.Error("zero ID")
			}
		}
	})
}

// BenchmarkChecksum4KiB is what a Get pays now to see that a block did
// not change on disk.
func BenchmarkChecksum4KiB(b *testing.B) {
	v := newBlockMaker(3).make()
	b.SetBytes(benchBlockSize)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if checksum(v) == 0 {
				b.Error("zero sum")
			}
		}
	})
}

// deleteParallel deletes every key of keys once, from putParallelism
// goroutines per core (b.N is capped at len(keys) by the caller's fill).
func deleteParallel[K any](b *testing.B, keys []K, del func(K) error) {
	b.ReportAllocs()
	b.SetParallelism(putParallelism)
	b.ResetTimer()
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			if err := del(keys[i%int64(len(keys))]); err != nil && i < int64(len(keys)) {
				b.Error(err)
				return
			}
		}
	})
}

// benchDelete stores b.N blocks of size bytes, then deletes them all with
// their preimage: a Delete reads only metadata, so its cost must not grow
// with the block.
func benchDelete(b *testing.B, size int) {
	s := openBadgerB(b)
	m := newBlockMakerSize(5, size)
	ids := fill(b, b.N, m, func(v []byte) (block.ID, error) {
		return s.Put(b.Context(), v, time.Hour, PutOptions{})
	})
	deleteParallel(b, ids, func(id block.ID) error { return s.Delete(b.Context(), id, m.preimage) })
}

// Run with a fixed count (-benchtime 1000x): every op needs a block of
// its own, stored before the timer starts.
func BenchmarkDelete4KiB(b *testing.B)  { benchDelete(b, benchBlockSize) }
func BenchmarkDelete64KiB(b *testing.B) { benchDelete(b, 16*benchBlockSize) }

// BenchmarkRawBadgerDelete4KiB deletes one key per synced transaction:
// the baseline of a Delete.
func BenchmarkRawBadgerDelete4KiB(b *testing.B) {
	db := openRawBadger(b)
	keys := fill(b, b.N, newBlockMaker(5), func(v []byte) ([]byte, error) {
		k := rawKey(binary.BigEndian.Uint64(v[len(v)-8:]))
		return k, rawPut(db, k, v)
	})
	deleteParallel(b, keys, func(k []byte) error {
		return db.Update(func(txn *badger.Txn) error { return txn.Delete(k) })
	})
}

// BenchmarkGetVsRaw4KiB reads from the store and from plain Badger (both
// filled as in BenchmarkGet4KiB and BenchmarkRawBadgerGet4KiB) in
// alternating slices of getSlice reads, in the same goroutines, so both
// see the same load of the machine: on a busy machine the two separate
// benchmarks run seconds apart and their ratio drifts with the load. It
// reports raw/store: the store's speed as a share of raw Badger's
// (target 0.6 and above). An op is one store Get and one raw Get.
func BenchmarkGetVsRaw4KiB(b *testing.B) {
	s := openBadgerB(b)
	ids := fill(b, benchHeld, newBlockMaker(2), func(v []byte) (block.ID, error) {
		return s.Put(b.Context(), v, time.Hour, PutOptions{})
	})
	db := openRawBadger(b)
	keys := fill(b, benchHeld, newBlockMaker(2), func(v []byte) ([]byte, error) {
		k := rawKey(binary.BigEndian.Uint64(v[len(v)-8:]))
		return k, rawPut(db, k, v)
	})
	storeGet := func(rng *rand.Rand) error {
		_, _, err := s.Get(b.Context(), ids[rng.IntN(len(ids))])
		return err
	}
	rawGet := func(rng *rand.Rand) error {
		return db.View(func(txn *badger.Txn) error {
			item, err := txn.Get(keys[rng.IntN(len(keys))])
			if err != nil {
				return err
			}
			_, err = item.ValueCopy(nil)
			return err
		})
	}
	run := func(b *testing.B, parallel bool) {
		var storeNs, rawNs atomic.Int64
		var seed atomic.Uint64
		work := func(next func() bool) {
			rng := rand.New(rand.NewPCG(seed.Add(1), 0))
			for {
				n := 0
				for n < getSlice && next() {
					n++
				}
				if n == 0 {
					return
				}
				for _, side := range []struct {
					get func(*rand.Rand) error
					ns  *atomic.Int64
				}{{storeGet, &storeNs}, {rawGet, &rawNs}} {
					start := time.Now()
					for range n {
						if err := side.get(rng); err != nil {
							b.Error(err)
							return
						}
					}
					side.ns.Add(int64(time.Since(start)))
				}
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		if parallel {
			b.SetParallelism(putParallelism)
			b.RunParallel(func(pb *testing.PB) { work(pb.Next) })
		} else {
			i := 0
			work(func() bool { i++; return i <= b.N })
		}
		if storeNs.Load() > 0 {
			b.ReportMetric(float64(rawNs.Load())/float64(storeNs.Load()), "raw/store")
		}
	}
	b.Run("random", func(b *testing.B) { run(b, true) })
	b.Run("random-serial", func(b *testing.B) { run(b, false) })
}

// getSlice is how many Gets BenchmarkGetVsRaw4KiB makes on one side
// before it switches to the other.
const getSlice = 32
