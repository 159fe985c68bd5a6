package kademlia_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/blockstore"
	"github.com/flowmail/flowmail/internal/recordtest"
	"github.com/flowmail/flowmail/kademlia"
	"github.com/flowmail/flowmail/record"
	"github.com/flowmail/flowmail/transport"
)

// Records over real QUIC on loopback (docs/PROTOCOL.md 15.4): every
// refusal on STORE and on read has its own error, and a record outlives
// its owner going offline while the nodes around it change.

// hangGuard bounds a test that waits only on events: it fails, never
// flakes, only if something hangs.
const hangGuard = 5 * time.Minute

func TestRecordRefusalsOverQUIC(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	a := recordtest.MustLoad(t)
	net := newQUICNet(t, 4)
	var full []*quicNode
	for range 4 {
		full = append(full, net.add(ctx, false, nil))
	}
	client := net.add(ctx, true, nil)
	if n, err := client.d.PutRecord(ctx, a.V2, time.Hour); err != nil || n != 4 {
		t.Fatalf("PutRecord V2: %d nodes, %v; want all 4", n, err)
	}
	store := func(at *quicNode, rec []byte) error {
		_, errs := kademlia.RequestAll(ctx, client.d, []transport.Contact{at.contact()}, kademlia.Store{Lifetime: 3600, Block: rec})
		if len(errs) == 0 {
			return nil
		}
		return errs[0]
	}
	check := func(name string, rec []byte, code kademlia.ErrorCode, reason error) {
		t.Helper()
		for _, at := range full {
			err := store(at, rec)
			var e *kademlia.Error
			if !errors.As(err, &e) || e.Code != code {
				t.Fatalf("%s: STORE answered %v, want ERROR %d (%v)", name, err, code, code)
			}
			if !errors.Is(err, reason) && !strings.Contains(e.Text, reason.Error()) {
				t.Fatalf("%s: %v does not give the reason %v", name, err, reason)
			}
		}
	}
	check("replayed older record", a.V1, kademlia.CodeStale, record.ErrStale)
	check("forked chain", a.Fork, kademlia.CodeForked, record.ErrForked)
	check("signed by the wrong key", a.WrongKey, kademlia.CodeInvalidBlock, record.ErrWrongKey)
	check("over 4 KiB", a.TooLarge, kademlia.CodeInvalidBlock, record.ErrTooLarge)
	check("event after a revocation", a.AfterRevocation, kademlia.CodeRevoked, record.ErrRevoked)

	// The client's own checks refuse what it would have sent.
	if _, err := client.d.PutRecord(ctx, a.WrongKey, time.Hour); !errors.Is(err, kademlia.ErrNotARecord) || !errors.Is(err, record.ErrWrongKey) {
		t.Fatalf("PutRecord of a wrong-key log: %v", err)
	}
	if _, err := client.d.PutRecord(ctx, a.TooLarge, time.Hour); !errors.Is(err, record.ErrTooLarge) {
		t.Fatalf("PutRecord of an oversized record: %v", err)
	}
	// A PutRecord that every node refuses says why.
	if _, err := client.d.PutRecord(ctx, a.Fork, time.Hour); !errors.Is(err, kademlia.ErrNotStored) || !errors.Is(err, record.ErrForked) {
		t.Fatalf("PutRecord of a fork: %v, want ErrNotStored and ErrForked", err)
	}

	if n, err := client.d.PutRecord(ctx, a.Revoked, time.Hour); err != nil || n != 4 {
		t.Fatalf("PutRecord of the revocation: %d nodes, %v", n, err)
	}
	check("fork after the revocation", a.Fork, kademlia.CodeRevoked, record.ErrRevoked)
	check("older record after the revocation", a.V1, kademlia.CodeRevoked, record.ErrRevoked)
	if _, err := client.d.PutRecord(ctx, a.V2, time.Hour); !errors.Is(err, record.ErrRevoked) {
		t.Fatalf("PutRecord after the revocation: %v, want ErrRevoked", err)
	}
	st, err := client.d.KeyState(ctx, a.Address)
	if err != nil || !st.Revoked || st.Sendable() == nil {
		t.Fatalf("KeyState after the revocation: %+v, %v", st, err)
	}
}

// recordLiar answers FIND_BLOCK of slot with whatever *answer holds (nothing:
// as the DHT would) and everything else as the DHT does.
func recordLiar(slot block.ID, answer *atomic.Pointer[[]byte]) handlerFor {
	return func(d *kademlia.DHT) transport.Handler {
		return func(ctx context.Context, from transport.Peer, req []byte) []byte {
			if m, err := kademlia.Decode(req); err == nil {
				if fb, ok := m.(kademlia.FindBlock); ok && fb.ID == slot {
					if b := answer.Load(); b != nil {
						resp, _ := kademlia.Encode(kademlia.BlockReply{Lifetime: 3600, Block: *b})
						return resp
					}
				}
			}
			return d.Handle(ctx, from, req)
		}
	}
}

func TestRecordReadFoldsTheKClosestAnswers(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	a := recordtest.MustLoad(t)
	net := newQUICNet(t, 5)
	var answer atomic.Pointer[[]byte]
	for range 4 {
		net.add(ctx, false, nil)
	}
	net.add(ctx, false, recordLiar(a.Slot, &answer))
	read := func(t *testing.T) (*record.Record, error) {
		t.Helper()
		r, _, err := net.add(ctx, true, nil).d.GetRecord(ctx, a.Slot)
		return r, err
	}
	// Nothing stored, and a node that answers a forgery: the read says
	// what the forgery was.
	for _, tc := range []struct {
		name   string
		forged []byte
		why    error
	}{
		{"SignedByTheWrongKey", a.WrongKey, record.ErrWrongKey},
		{"Over4KiB", a.TooLarge, record.ErrTooLarge},
		{"EventAfterRevocation", a.AfterRevocation, record.ErrRevoked},
		{"AnotherSlot", a.Other, record.ErrSlot},
	} {
		t.Run(tc.name, func(t *testing.T) {
			answer.Store(&tc.forged)
			r, err := read(t)
			if r != nil || !errors.Is(err, record.ErrNotFound) || !errors.Is(err, tc.why) || !errors.Is(err, kademlia.ErrBadReply) {
				t.Fatalf("read: %v, %v; want not found because of %v", r, err, tc.why)
			}
		})
	}

	client := net.add(ctx, true, nil)
	if _, err := client.d.PutRecord(ctx, a.V2, time.Hour); err != nil {
		t.Fatal(err)
	}
	t.Run("StaleNodeCannotHideTheNewest", func(t *testing.T) {
		answer.Store(&a.V1)
		r, err := read(t)
		if err != nil || !bytes.Equal(r.Bytes(), a.V2) {
			t.Fatalf("read: %v; want V2 although a node answers V1", err)
		}
	})
	t.Run("ForkIsReported", func(t *testing.T) {
		answer.Store(&a.Fork)
		if r, err := read(t); !errors.Is(err, record.ErrForked) {
			t.Fatalf("read of a forked slot: %v, %v; want ErrForked", r, err)
		}
		st, err := net.add(ctx, true, nil).d.KeyState(ctx, a.Address)
		if err != nil || !st.Forked || !errors.Is(st.Sendable(), record.ErrForked) {
			t.Fatalf("KeyState of a forked log: %+v, %v", st, err)
		}
	})
	t.Run("RevocationWinsOverTheChainItEnds", func(t *testing.T) {
		answer.Store(&a.Revoked)
		st, err := net.add(ctx, true, nil).d.KeyState(ctx, a.Address)
		if err != nil || !st.Revoked || !errors.Is(st.Sendable(), record.ErrRevoked) {
			t.Fatalf("KeyState with one node holding the revocation: %+v, %v", st, err)
		}
	})
}

// A holder whose peer refuses its republished record as stale fetches the
// newer version and keeps it.
func TestRepublishTakesTheNewerRecordAPeerHolds(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	a := recordtest.MustLoad(t)
	net := newQUICNet(t, 2)
	behind := net.add(ctx, false, nil)
	ahead := net.add(ctx, false, nil)
	if _, errs := kademlia.RequestAll(ctx, ahead.d, []transport.Contact{behind.contact()}, kademlia.Store{Lifetime: 7200, Block: a.V1}); len(errs) != 0 {
		t.Fatal(errs[0])
	}
	if _, err := ahead.store.Put(ctx, a.V2, 2*time.Hour, blockstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	net.clk.Advance(kademlia.RepublishInterval * 12 / 10)
	if n, err := behind.d.Republish(ctx); err != nil || n != 0 {
		t.Fatalf("Republish of a stale record: %d taken, %v", n, err)
	}
	got, _, err := behind.store.Get(ctx, a.Slot)
	if err != nil || !bytes.Equal(got, a.V2) {
		t.Fatalf("after a stale refusal the holder keeps %x..., %v; want V2", got[:8], err)
	}
}

// TestRecordsSurviveTheirOwnerGoingOffline: an owner stores its key log
// and stops; over three republish rounds 3 of 10 nodes (30%) are replaced,
// each round the closest of the K nodes that held the record first, so
// after the last round none of them is left whatever IDs the seed gives
// the newcomers. The newest record is still found, at no fewer than K-1
// of the K closest live nodes right after the churn and at all K within
// three quiet rounds, with no more lifetime than the owner gave it.
func TestRecordsSurviveTheirOwnerGoingOffline(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	a := recordtest.MustLoad(t)
	const nodes, k = 10, 3
	net := newQUICNet(t, k)
	for range nodes {
		net.add(ctx, false, nil)
	}
	owner := net.add(ctx, false, nil)
	lifetime := 24 * time.Hour
	if _, err := owner.d.PutRecord(ctx, a.V1, lifetime); err != nil {
		t.Fatal(err)
	}
	if n, err := owner.d.PutRecord(ctx, a.V2, lifetime); err != nil || n < k-1 {
		t.Fatalf("owner's PutRecord: %d nodes, %v", n, err)
	}
	// Every holder took V2 before PutRecord returned: none may keep it
	// past this, however long the stores took.
	expires := net.clk.Now().Add(lifetime)
	net.remove(owner)
	first := map[block.ID]bool{}
	for _, qn := range net.closestLive(a.Slot)[:k] {
		first[qn.d.ID()] = true
	}

	// republishRound moves time past every republish date and lets every
	// live node check its table and republish, all at once.
	rounds := 0
	republishRound := func() {
		rounds++
		net.clk.Advance(kademlia.RepublishInterval * 12 / 10)
		net.everyLive(func(qn *quicNode) { qn.d.CheckLiveness(ctx) })
		var republished atomic.Int64
		net.everyLive(func(qn *quicNode) {
			n, err := qn.d.Republish(ctx)
			if err != nil {
				t.Logf("round %d: republish on %v: %v", rounds, qn.d.ID().Short(), err)
			}
			republished.Add(int64(n))
		})
		t.Logf("round %d: %d republished", rounds, republished.Load())
	}
	// holding returns the nodes among the k closest live that hold V2,
	// and fails the test if any holds it past the owner's date or holds
	// something else.
	holding := func() []*quicNode {
		var out []*quicNode
		for _, qn := range net.closestLive(a.Slot)[:k] {
			if first[qn.d.ID()] {
				t.Fatalf("node %v held the record before the churn and is still among the closest: the test proves nothing", qn.d.ID().Short())
			}
			got, m, err := qn.store.Get(ctx, a.Slot)
			if errors.Is(err, blockstore.ErrNotFound) {
				continue
			}
			if err != nil || !bytes.Equal(got, a.V2) {
				t.Fatalf("node %v among the %d closest live holds something other than V2: %v", qn.d.ID().Short(), k, err)
			}
			// Republishing passed the remaining lifetime on, never a
			// fresh one. A STORE carries a relative lifetime, so each hop
			// may add the time its request took in flight; a fresh
			// lifetime would add hours.
			if m.Expires.After(expires.Add(time.Minute)) {
				t.Fatalf("node %v keeps the record until %v, past the owner's %v", qn.d.ID().Short(), m.Expires, expires)
			}
			out = append(out, qn)
		}
		return out
	}

	replaced := 0
	for range 3 {
		// The first holder closest to the slot goes, and a new node
		// joins; after the last round none of the first holders is left,
		// whatever IDs the seed gave the newcomers.
		for _, qn := range net.closestLive(a.Slot) {
			if first[qn.d.ID()] {
				net.remove(qn)
				net.add(ctx, false, nil)
				replaced++
				break
			}
		}
		republishRound()
	}
	if replaced*100 < 30*nodes {
		t.Fatalf("only %d of %d nodes replaced", replaced, nodes)
	}
	// A newcomer among the k closest is found by a holder's lookup only
	// once some node it asks has it in its table; in a network this small
	// (k = 3, one bucket for the far half) the one republisher of a round
	// (the others, stored to, wait an interval) may miss it that round.
	// The record must never drop below k-1 of the k closest, and must
	// reach all k within a few quiet rounds.
	if h := holding(); len(h) < k-1 {
		t.Fatalf("after the churn only %d of the %d closest live hold V2", len(h), k)
	}
	for quiet := 0; len(holding()) < k; quiet++ {
		if quiet == 3 {
			t.Fatalf("after %d quiet rounds still only %d of the %d closest live hold V2", quiet, len(holding()), k)
		}
		republishRound()
	}
	reader := net.add(ctx, true, nil)
	r, left, err := reader.d.GetRecord(ctx, a.Slot)
	if err != nil || !bytes.Equal(r.Bytes(), a.V2) {
		t.Fatalf("after the churn GetRecord: %v", err)
	}
	if left <= 0 || left > lifetime {
		t.Fatalf("lifetime left %v", left)
	}
	st, err := reader.d.KeyState(ctx, a.Address)
	if err != nil || st.Generation != 2 || st.Sendable() != nil {
		t.Fatalf("KeyState after the churn: %+v, %v", st, err)
	}
}
