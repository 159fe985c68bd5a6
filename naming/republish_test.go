package naming

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/internal/clock"
	"github.com/flowmail/flowmail/record"
)

// storeLog is a Publisher that records what it stored, and fails for the
// names in fail.
type storeLog struct {
	mu     sync.Mutex
	stored []stored
	fail   map[string]bool
}

type stored struct {
	name     string
	id       block.ID
	lifetime time.Duration
}

func (p *storeLog) PutRecord(_ context.Context, b []byte, lifetime time.Duration) (int, error) {
	r, err := record.Parse(b)
	if err != nil {
		return 0, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail[r.Name.Name] {
		return 0, errors.New("test: refused")
	}
	p.stored = append(p.stored, stored{r.Name.Name, block.Sum(b), lifetime})
	return 3, nil
}

func (p *storeLog) since(i int) []stored {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.stored[i:])
}

// fixedClock is a clock whose Now a test sets.
type fixedClock struct {
	clock.Real
	now time.Time
}

func (c *fixedClock) Now() time.Time { return c.now }

func names(ss []stored) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.name
	}
	slices.Sort(out)
	return out
}

// Certificates are stored again before the network's copy expires: each
// every CertRepublishEvery, for the time left to its not_after (at most a
// block's lifetime); a failed store is tried the next round; a new
// version at once; one that ended never; one ending soon is reported.
func TestRepublisherKeepsCertificatesAlive(t *testing.T) {
	random := testRand(t)
	dom, alice := newDomainKey(t, random), newPerson(t, random)
	year := record.Version{Seq: 1, NotBefore: uint64(t0.Unix()), NotAfter: uint64(t0.Add(365 * 24 * time.Hour).Unix())}
	short := record.Version{Seq: 1, NotBefore: uint64(t0.Unix()), NotAfter: uint64(t0.Add(11 * 24 * time.Hour).Unix())}
	ended := record.Version{Seq: 1, NotBefore: uint64(t0.Unix()), NotAfter: uint64(t0.Add(12 * time.Hour).Unix())}
	a := certify(t, "a@example.test", dom, alice, year)
	b := certify(t, "b@example.test", dom, alice, short)
	c := certify(t, "c@example.test", dom, alice, ended)
	certs := []*record.Record{a, b, c}
	pub := &storeLog{fail: map[string]bool{"a@example.test": true}}
	clk := &fixedClock{now: t0.Add(24 * time.Hour)}
	r := &Republisher{Certs: func() ([]*record.Record, error) { return certs, nil }, DHT: pub, Clock: clk}
	ctx := context.Background()

	rd, err := r.RunRound(ctx)
	got := pub.since(0)
	if err != nil || !slices.Equal(names(got), []string{"b@example.test"}) || !slices.Equal(rd.Failed, []string{"a@example.test"}) ||
		rd.Ended != 1 || !slices.Equal(rd.Ending, []string{"b@example.test"}) {
		t.Fatalf("first round: %+v, stored %v, %v", rd, got, err)
	}
	if want := 10 * 24 * time.Hour; got[0].lifetime != want {
		t.Fatalf("b stored for %v, want the %v left to its not_after", got[0].lifetime, want)
	}

	// An hour later: the failed one is tried again, the stored one waits.
	pub.fail = nil
	clk.now = clk.now.Add(CertRepublishInterval)
	n := len(pub.since(0))
	if rd, err := r.RunRound(ctx); err != nil || !slices.Equal(names(pub.since(n)), []string{"a@example.test"}) || pub.since(n)[0].lifetime != block.MaxLifetime {
		t.Fatalf("second round: %+v, stored %v, %v", rd, pub.since(n), err)
	}
	n = len(pub.since(0))
	if rd, err := r.RunRound(ctx); err != nil || len(pub.since(n)) != 0 {
		t.Fatalf("a round with nothing due stored %v (%+v, %v)", pub.since(n), rd, err)
	}

	// A new version of a is due at once.
	a2 := certify(t, "a@example.test", dom, alice, record.Version{Seq: 2, Prev: block.Sum(a.Bytes()), NotBefore: year.NotBefore, NotAfter: year.NotAfter})
	certs = []*record.Record{a2, b, c}
	if rd, err := r.RunRound(ctx); err != nil || len(pub.since(n)) != 1 || pub.since(n)[0].id != block.Sum(a2.Bytes()) {
		t.Fatalf("a new version: %+v, stored %v, %v", rd, pub.since(n), err)
	}

	// CertRepublishEvery after its last store, each is stored again, before
	// the lifetime it was stored with ends.
	if CertRepublishEvery >= block.MaxLifetime/2 {
		t.Fatalf("CertRepublishEvery %v leaves fewer than two chances in a block's lifetime", CertRepublishEvery)
	}
	clk.now = clk.now.Add(CertRepublishEvery)
	n = len(pub.since(0))
	if rd, err := r.RunRound(ctx); err != nil || !slices.Equal(names(pub.since(n)), []string{"a@example.test", "b@example.test"}) {
		t.Fatalf("after CertRepublishEvery: %+v, stored %v, %v", rd, pub.since(n), err)
	}
}

// A round stores at most CertRepublishPerRound certificates, the ones stored
// longest ago (never first); the rest wait for the next round.
func TestRepublisherBoundsEachRound(t *testing.T) {
	random := testRand(t)
	dom, alice := newDomainKey(t, random), newPerson(t, random)
	var certs []*record.Record
	for i := range CertRepublishPerRound + 6 {
		certs = append(certs, certify(t, fmt.Sprintf("u%d@example.test", i), dom, alice, record.Version{}))
	}
	pub := &storeLog{}
	clk := &fixedClock{now: t0.Add(time.Hour)}
	r := &Republisher{Certs: func() ([]*record.Record, error) { return certs, nil }, DHT: pub, Clock: clk}
	rd, err := r.RunRound(context.Background())
	if err != nil || len(rd.Stored) != CertRepublishPerRound || rd.Waiting != 6 {
		t.Fatalf("first round: %d stored, %d waiting, %v", len(rd.Stored), rd.Waiting, err)
	}
	clk.now = clk.now.Add(CertRepublishInterval)
	rd, err = r.RunRound(context.Background())
	if err != nil || len(rd.Stored) != 6 || rd.Waiting != 0 {
		t.Fatalf("second round: %d stored, %d waiting, %v", len(rd.Stored), rd.Waiting, err)
	}
	seen := map[string]int{}
	for _, s := range pub.since(0) {
		seen[s.name]++
	}
	if len(seen) != len(certs) {
		t.Fatalf("%d certificates stored in two rounds, want all %d once", len(seen), len(certs))
	}
}

// Run makes a round at once and then one every CertRepublishInterval, and
// returns when its context ends.
func TestRepublisherRunsUntilCancelled(t *testing.T) {
	random := testRand(t)
	dom, alice := newDomainKey(t, random), newPerson(t, random)
	cert := certify(t, "a@example.test", dom, alice, record.Version{Seq: 1, NotBefore: uint64(time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC).Unix()), NotAfter: uint64(time.Date(2000, 12, 1, 0, 0, 0, 0, time.UTC).Unix())})
	synctest.Test(t, func(t *testing.T) {
		pub := &storeLog{}
		r := &Republisher{Certs: func() ([]*record.Record, error) { return []*record.Record{cert}, nil }, DHT: pub}
		ctx, cancel := context.WithCancel(t.Context())
		rounds := make(chan Round, 10)
		done := make(chan struct{})
		go func() {
			defer close(done)
			r.Run(ctx, func(rd Round, _ error) { rounds <- rd })
		}()
		if rd := <-rounds; len(rd.Stored) != 1 {
			t.Fatalf("the first round stored %v", rd.Stored)
		}
		time.Sleep(CertRepublishInterval) // virtual time
		if rd := <-rounds; len(rd.Stored) != 0 {
			t.Fatalf("an hour later a round stored %v again", rd.Stored)
		}
		cancel()
		<-done
	})
}
