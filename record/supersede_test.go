package record

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
)

func TestSupersedesKeyLogs(t *testing.T) {
	r := testRand(t)
	o := newOwner(t, r)
	v0 := o.log
	o.rotate(t, 1, r)
	v1 := o.log
	branch := *o // a second rotation from v1 by the same next key: a fork
	branch.gens = slices.Clone(o.gens)
	o.rotate(t, 2, r)
	v2 := o.log
	branch.rotate(t, 3, r)
	fork := branch.log
	revoked, err := Revoke(v2, o.id, t0.Add(4*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	other := newOwner(t, r).log
	for name, tc := range map[string]struct {
		held, next *Record
		want       error
	}{
		"extension":                 {v0, v2, nil},
		"one event more":            {v1, v2, nil},
		"same bytes":                {v2, v2, nil},
		"revocation extends":        {v2, revoked, nil},
		"replayed older log":        {v2, v1, ErrStale},
		"replayed inception":        {v2, v0, ErrStale},
		"forked chain":              {v2, fork, ErrForked},
		"forked, shorter":           {fork, v1, ErrStale},
		"after a revocation":        {revoked, fork, ErrRevoked},
		"older after a revocation":  {revoked, v1, ErrRevoked},
		"another identity's log":    {v2, other, ErrSlot},
		"same revocation refreshed": {revoked, revoked, nil},
	} {
		if err := Supersedes(tc.held, tc.next); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

func TestResolveKeyLogFoldsAnswers(t *testing.T) {
	r := testRand(t)
	o := newOwner(t, r)
	addr := o.id.ID()
	v0 := o.log
	o.rotate(t, 1, r)
	v1 := o.log
	branch := *o
	o.rotate(t, 2, r)
	v2 := o.log
	branch.rotate(t, 3, r)
	junk := append([]byte(nil), v2.Bytes()...)
	junk[len(junk)-1] ^= 1
	s, err := ResolveKeyLog(addr, [][]byte{v1.Bytes(), junk, v2.Bytes(), v0.Bytes(), newOwner(t, r).log.Bytes()})
	if err != nil {
		t.Fatal(err)
	}
	if s.Forked || s.Generation != 2 || s.Sendable() != nil {
		t.Fatalf("agreeing answers resolved to %+v", s)
	}
	s, err = ResolveKeyLog(addr, [][]byte{v2.Bytes(), v0.Bytes(), branch.log.Bytes()})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Forked || s.Revoked || s.Generation != 1 || s.Sendable() == nil {
		t.Fatalf("forked answers resolved to %+v: want the shared generation 1, forked", s)
	}
	if _, err := ResolveKeyLog(addr, [][]byte{junk, nil}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no valid answer: %v", err)
	}
	if n, err := Newest(KeyLogSlot(addr), [][]byte{v1.Bytes(), v2.Bytes(), v0.Bytes()}); err != nil || n.KeyLog.Events[1] != v2.KeyLog.Events[1] {
		t.Fatalf("Newest of agreeing logs: %v", err)
	}
	if _, err := Newest(KeyLogSlot(addr), [][]byte{v2.Bytes(), branch.log.Bytes()}); !errors.Is(err, ErrForked) {
		t.Fatalf("Newest of forked logs: %v", err)
	}
}

func TestSupersedesCertificates(t *testing.T) {
	r := testRand(t)
	o := newOwner(t, r)
	node1, node2 := block.ID{1}, block.ID{2}
	nb := uint64(t0.Unix())
	sign := func(seq uint32, prev *Record, revoked bool, delegates ...block.ID) *Record {
		t.Helper()
		d := Delegation{Owner: o.id.ID(), Delegates: delegates, Version: Version{Seq: seq, Revoked: revoked, NotBefore: nb, NotAfter: nb + 86400}}
		if prev != nil {
			d.Version.Prev = block.Sum(prev.Bytes())
		}
		rec, err := SignDelegation(d, o.id)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	v1 := sign(1, nil, false, node1)
	v2 := sign(2, v1, false, node1, node2)
	v2b := sign(2, v1, false, node2)
	v3 := sign(3, v2, false, node2)
	v3b := sign(3, v2b, false, node1)
	rev := sign(3, v2, true, node1, node2)
	v4 := sign(4, rev, false, node1)
	for name, tc := range map[string]struct {
		held, next *Record
		want       error
	}{
		"next version":              {v1, v2, nil},
		"skipping a version":        {v1, v3, nil},
		"same bytes":                {v2, v2, nil},
		"replayed older version":    {v3, v1, ErrStale},
		"same number, other bytes":  {v2, v2b, ErrForked},
		"next version, wrong link":  {v2, v3b, ErrForked},
		"revocation":                {v2, rev, nil},
		"after a revocation":        {rev, v4, ErrRevoked},
		"older after a revocation":  {rev, v1, ErrRevoked},
		"another signer's slot":     {v1, sign1(t, o, newOwner(t, r)), ErrSlot},
		"delegation against keylog": {v1, o.log, ErrSlot},
	} {
		if err := Supersedes(tc.held, tc.next); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	slot := v1.Slot()
	// Whatever the order, a revocation wins and forks are found.
	for _, order := range [][]*Record{{v4, rev, v1}, {v1, v4, rev}, {rev, v4}} {
		got, err := Newest(slot, raw(order))
		if err != nil || got != nil && got.Delegation.Version.Seq != 3 {
			t.Fatalf("Newest with a revocation: %v", err)
		}
		if !got.Delegation.Version.Revoked {
			t.Fatal("the revocation did not win")
		}
	}
	for _, order := range [][]*Record{{v3b, v1, v2}, {v2, v3b}, {v1, v3, v2, v2b}} {
		if _, err := Newest(slot, raw(order)); !errors.Is(err, ErrForked) {
			t.Fatalf("Newest of a forked history: %v", err)
		}
	}
	if got, err := Newest(slot, raw([]*Record{v1, v3, v2})); err != nil || got != nil && got.Delegation.Version.Seq != 3 {
		t.Fatalf("Newest: %v", err)
	}
}

// sign1 is a first delegation of o signed by someone else's key: it lives
// in that key's slot, never in o's.
func sign1(t *testing.T, o, by *owner) *Record {
	d := Delegation{Owner: o.id.ID(), Delegates: []block.ID{{7}}, Version: Version{Seq: 1, NotBefore: 1, NotAfter: 2}}
	rec, err := SignDelegation(d, by.id)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Slot() == DelegationSlot(o.id.ID(), keyOf(o.id)) {
		t.Fatal("a forged delegation landed in the owner's slot")
	}
	return rec
}

func raw(rs []*Record) [][]byte {
	out := make([][]byte, len(rs))
	for i, r := range rs {
		out[i] = r.Bytes()
	}
	return out
}
