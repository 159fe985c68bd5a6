package kadsim

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/kademlia"
)

// Percentile returns the p-th percentile (0..100) of xs, nearest rank.
func Percentile(xs []int, p int) int {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := (p*len(s) + 99) / 100
	return s[max(i-1, 0)]
}

// Parallel runs fn(i) for i in [0, n) with at most width at once.
func Parallel(n, width int, fn func(i int)) {
	sem := make(chan struct{}, width)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(i)
		})
	}
	wg.Wait()
}

// Figures describe a batch of lookups.
type Figures struct {
	Lookups, Exact   int
	Hops, Msgs, Rnds []int
	Stalled, Failed  []int
	Millis           []int // virtual time per lookup
}

func (f *Figures) String() string {
	return fmt.Sprintf("%d/%d lookups exact (%.2f%%); hops median %d p95 %d; rounds median %d p95 %d; messages median %d p95 %d; stalled median %d p95 %d; failed median %d p95 %d; time median %d ms p95 %d ms",
		f.Exact, f.Lookups, 100*float64(f.Exact)/float64(f.Lookups),
		Percentile(f.Hops, 50), Percentile(f.Hops, 95),
		Percentile(f.Rnds, 50), Percentile(f.Rnds, 95),
		Percentile(f.Msgs, 50), Percentile(f.Msgs, 95),
		Percentile(f.Stalled, 50), Percentile(f.Stalled, 95),
		Percentile(f.Failed, 50), Percentile(f.Failed, 95),
		Percentile(f.Millis, 50), Percentile(f.Millis, 95))
}

// Job is one lookup of a simulation run.
type Job struct {
	From   *Node
	Target block.ID
}

// RandomJobs draws count lookups of random targets from random nodes of
// from.
func (s *Net) RandomJobs(from []*Node, count int) []Job {
	jobs := make([]Job, count)
	for i := range jobs {
		jobs[i] = Job{from[s.Rand.IntN(len(from))], s.RandomID()}
	}
	return jobs
}

// RunLookups looks up random targets from random nodes of from and
// checks each answer against the true K closest live nodes.
func (s *Net) RunLookups(ctx context.Context, t testing.TB, from []*Node, count int) *Figures {
	return RunJobs(ctx, t, s.Live(), s.RandomJobs(from, count))
}

// RunJobs runs the lookups, 50 at a time, and checks each answer against
// the true K closest of live.
func RunJobs(ctx context.Context, t testing.TB, live []*Node, jobs []Job) *Figures {
	count := len(jobs)
	f := &Figures{Lookups: count}
	for _, xs := range []*[]int{&f.Hops, &f.Msgs, &f.Rnds, &f.Stalled, &f.Failed, &f.Millis} {
		*xs = make([]int, count)
	}
	var mu sync.Mutex
	Parallel(count, 50, func(i int) {
		j := jobs[i]
		start := time.Now()
		got, st, err := j.From.DHT.Lookup(ctx, j.Target)
		took := time.Since(start)
		if err != nil {
			t.Errorf("lookup of %v from %v: %v", j.Target.Short(), j.From.ID().Short(), err)
			return
		}
		// A lookup never returns the node that runs it.
		want := TrueClosest(slices.DeleteFunc(slices.Clone(live), func(n *Node) bool { return n == j.From }), j.Target, kademlia.K)
		mu.Lock()
		defer mu.Unlock()
		if slices.Equal(ContactIDs(got), want) {
			f.Exact++
		}
		f.Hops[i], f.Msgs[i], f.Rnds[i] = st.Hops, st.Messages, st.Rounds
		f.Stalled[i], f.Failed[i], f.Millis[i] = st.Stalled, st.Failed, int(took/time.Millisecond)
	})
	return f
}

// StoreFromClients starts clients client-mode nodes that each put
// perClient small data blocks, and returns the blocks' IDs. Each client
// joins through a random node of through (nil: any live node), as a
// client joins through its own node.
func (s *Net) StoreFromClients(ctx context.Context, t testing.TB, clients, perClient int, through []*Node) []block.ID {
	cs := s.AddNodes(clients, true)
	s.JoinThrough(ctx, cs, through, clients)
	blocks := make([][]byte, clients*perClient)
	for i := range blocks {
		blocks[i] = s.DataBlock()
	}
	ids := make([]block.ID, len(blocks))
	stored := make([]int, len(blocks))
	Parallel(clients, clients, func(c int) {
		for i := c * perClient; i < (c+1)*perClient; i++ {
			n, err := cs[c].DHT.Put(ctx, blocks[i], 24*time.Hour)
			if err != nil {
				t.Errorf("put from client %d: %v", c, err)
			}
			ids[i], stored[i] = block.Sum(blocks[i]), n
		}
	})
	t.Logf("stored %d blocks from %d clients; replicas per block median %d, min %d", len(blocks), clients, Percentile(stored, 50), Percentile(stored, 0))
	for _, c := range cs {
		s.Kill(c) // the clients were short-lived processes
	}
	return ids
}

// FailFraction kills a random fraction of the live full nodes.
func (s *Net) FailFraction(fraction float64) {
	live := s.Live()
	s.Rand.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
	for _, n := range live[:int(fraction*float64(len(live)))] {
		s.Kill(n)
	}
}

// RepublishRound lets one republish interval pass (Net.RepublishInterval,
// else kademlia.RepublishInterval), calling every live node's Republish
// each minute from 0.85 to 1.15 intervals after the puts, as the node
// package's timer would. It calls nothing else: with a republish
// interval shorter than kademlia.ContactFreshness, no contact goes stale
// meanwhile (revalidating whole routing tables, as the node's liveness
// loop does, costs more messages than the rest of a large simulation);
// Idle runs the liveness loop.
func (s *Net) RepublishRound(ctx context.Context, t testing.TB) {
	interval := kademlia.RepublishInterval
	if s.RepublishInterval > 0 {
		interval = s.RepublishInterval
	}
	time.Sleep(interval * 85 / 100)
	republished := 0
	for range 2 + int(interval*30/100/time.Minute) {
		live := s.Live()
		counts := make([]int, len(live))
		Parallel(len(live), 64, func(i int) {
			counts[i], _ = live[i].DHT.Republish(ctx)
		})
		for _, c := range counts {
			republished += c
		}
		time.Sleep(time.Minute)
	}
	t.Logf("republish round: %d block republishes by %d live nodes", republished, len(s.Live()))
}

// Idle lets d pass minute by minute, calling every live full node's
// CheckLiveness each minute as the node package's liveness loop does.
func (s *Net) Idle(ctx context.Context, d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); {
		live := s.Live()
		Parallel(len(live), 64, func(i int) { live[i].DHT.CheckLiveness(ctx) })
		time.Sleep(min(time.Minute, time.Until(end)))
	}
}

// ReplicasAtClosest counts, for each block, how many of the k live nodes
// closest to it hold it.
func (s *Net) ReplicasAtClosest(ctx context.Context, ids []block.ID, k int) []int {
	live := s.Live()
	byID := make(map[block.ID]*Node, len(live))
	for _, n := range live {
		byID[n.ID()] = n
	}
	out := make([]int, len(ids))
	for i, id := range ids {
		for _, c := range TrueClosest(live, id, k) {
			if _, err := byID[c].Store.Stat(ctx, id); err == nil {
				out[i]++
			}
		}
	}
	return out
}

// HoldersOf counts, for each block, how many live full nodes hold it.
func (s *Net) HoldersOf(ctx context.Context, ids []block.ID) []int {
	out := make([]int, len(ids))
	for _, n := range s.Live() {
		if n.Store == nil {
			continue
		}
		for i, id := range ids {
			if _, err := n.Store.Stat(ctx, id); err == nil {
				out[i]++
			}
		}
	}
	return out
}

// BytesPerNode is the mean of the bytes the live full nodes' stores hold.
func (s *Net) BytesPerNode() float64 {
	var sum int64
	n := 0
	for _, nd := range s.Live() {
		if nd.Store != nil {
			sum += nd.Store.Stats().Bytes
			n++
		}
	}
	return float64(sum) / float64(max(n, 1))
}

// CountRetrievable gets every block from a random node of from.
func (s *Net) CountRetrievable(ctx context.Context, from []*Node, ids []block.ID) int {
	getters := make([]*Node, len(ids))
	for i := range getters {
		getters[i] = from[s.Rand.IntN(len(from))]
	}
	var mu sync.Mutex
	found := 0
	Parallel(len(ids), 50, func(i int) {
		b, _, err := getters[i].DHT.Get(ctx, ids[i])
		if err == nil && block.Sum(b) == ids[i] {
			mu.Lock()
			found++
			mu.Unlock()
		}
	})
	return found
}

// TotalRequests sums the requests every node sent.
func (s *Net) TotalRequests() uint64 {
	var sum uint64
	for _, n := range s.Nodes {
		sum += n.DHT.Stats().RequestsSent
	}
	return sum
}

// MeanTableSize is the mean routing-table size of nodes.
func MeanTableSize(nodes []*Node) float64 {
	sum := 0
	for _, n := range nodes {
		sum += n.DHT.Size()
	}
	return float64(sum) / float64(len(nodes))
}
