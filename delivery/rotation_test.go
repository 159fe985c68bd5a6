package delivery

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/record"
)

// fixedKeyLogs answers each address's key state as a test published it;
// an address it does not hold fails, as a network that found nothing.
type fixedKeyLogs map[block.ID]record.KeyState

var errNoLog = errors.New("test: no key log held")

func (f fixedKeyLogs) KeyState(_ context.Context, a block.ID) (record.KeyState, error) {
	st, ok := f[a]
	if !ok {
		return record.KeyState{}, fmt.Errorf("%w for %s", errNoLog, identity.FormatAddress(a))
	}
	return st, nil
}

// rotated is alice at generation 0 and after one rotation dated at, with
// the key state her log then gives.
func rotated(t *testing.T, at time.Time) (gen0, gen1 *identity.Identity, st record.KeyState) {
	t.Helper()
	gen0 = testIdentity(t, seedAlice, 4)
	next, err := gen0.DerivedNextKey()
	if err != nil {
		t.Fatal(err)
	}
	log, err := record.NewKeyLog(gen0.Public().Block)
	if err != nil {
		t.Fatal(err)
	}
	rot, err := record.Rotate(log, gen0, next, 4, at, detRand(5))
	if err != nil {
		t.Fatal(err)
	}
	if st, err = rot.Log.KeyLog.State(); err != nil {
		t.Fatal(err)
	}
	if rot.Identity.Public().ID == gen0.ID() || rot.Identity.ID() != gen0.ID() {
		t.Fatal("the rotation did not give a new pubkey block under the same address")
	}
	return gen0, rot.Identity, st
}

// A sender that rotated signs as its address (spec 9.2 from): the
// recipient delivers its mail as from that address once the key log
// shows the key is the address's, and refuses it when nothing can show
// that, or when the key is one the sender retired before signing.
func TestFetchMailFromARotatedSender(t *testing.T) {
	gen0, gen1, st := rotated(t, testNow.Add(-time.Hour))
	addr := gen0.ID()
	bob := testIdentity(t, seedBob, 4)
	c := testCodec(t)
	logs := fixedKeyLogs{addr: st}

	t.Run("current key delivered as the address", func(t *testing.T) {
		net := newMemNet(testNow)
		buildAndSend(t, c, net, gen1, composeTo(t, gen1, []*identity.Identity{bob}, "after rotating", "x"), bob).Release()
		rep := newMailbox(t, bob).fetch(t, c, net, FetchOptions{KeyLogs: logs})
		if len(rep.Delivered) != 1 || len(rep.Rejected)+len(rep.Deferred) != 0 {
			t.Fatalf("mail from alice's new key: %+v (rejected %v, deferred %v)", rep, rep.Rejected, rep.Deferred)
		}
		if got := rep.Delivered[0].From; got != addr {
			t.Fatalf("delivered as from %s, want alice's address %s", identity.FormatAddress(got), identity.FormatAddress(addr))
		}
	})

	t.Run("without key logs refused", func(t *testing.T) {
		net := newMemNet(testNow)
		buildAndSend(t, c, net, gen1, composeTo(t, gen1, []*identity.Identity{bob}, "unchecked", "x"), bob).Release()
		rep := newMailbox(t, bob).fetch(t, c, net, FetchOptions{})
		if len(rep.Delivered) != 0 || len(rep.Rejected) != 1 || !errors.Is(rep.Rejected[0], ErrSenderUnverified) {
			t.Fatalf("a rotated sender's mail with no key log to check: %+v, rejected %v", rep, rep.Rejected)
		}
	})

	t.Run("key log not found deferred", func(t *testing.T) {
		net := newMemNet(testNow)
		buildAndSend(t, c, net, gen1, composeTo(t, gen1, []*identity.Identity{bob}, "log missing", "x"), bob).Release()
		mb := newMailbox(t, bob)
		rep := mb.fetch(t, c, net, FetchOptions{KeyLogs: fixedKeyLogs{}})
		if len(rep.Delivered)+len(rep.Rejected) != 0 || len(rep.Deferred) != 1 || !errors.Is(rep.Deferred[0], ErrSenderUnverified) {
			t.Fatalf("a rotated sender whose log is not found yet: %+v, deferred %v, rejected %v", rep, rep.Deferred, rep.Rejected)
		}
		// Once the log is found, the retry delivers it.
		if rep := mb.fetch(t, c, net, FetchOptions{KeyLogs: logs}); len(rep.Delivered) != 1 {
			t.Fatalf("retry with the key log: %+v, rejected %v", rep, rep.Rejected)
		}
	})

	t.Run("retired key after the rotation refused", func(t *testing.T) {
		net := newMemNet(testNow)
		// Signed at testNow by generation 0, retired an hour before.
		buildAndSend(t, c, net, gen0, composeTo(t, gen0, []*identity.Identity{bob}, "old key", "x"), bob).Release()
		rep := newMailbox(t, bob).fetch(t, c, net, FetchOptions{KeyLogs: logs})
		if len(rep.Delivered) != 0 || len(rep.Rejected) != 1 || !errors.Is(rep.Rejected[0], record.ErrWrongKey) {
			t.Fatalf("mail signed by a retired key after its retirement: %+v, rejected %v", rep, rep.Rejected)
		}
		// Before the rotation, the same key was current: delivered.
		_, _, later := rotated(t, testNow.Add(time.Hour))
		net = newMemNet(testNow)
		buildAndSend(t, c, net, gen0, composeTo(t, gen0, []*identity.Identity{bob}, "old key, in time", "x"), bob).Release()
		if rep := newMailbox(t, bob).fetch(t, c, net, FetchOptions{KeyLogs: fixedKeyLogs{addr: later}}); len(rep.Delivered) != 1 {
			t.Fatalf("mail signed by generation 0 before its rotation: %+v, rejected %v", rep, rep.Rejected)
		}
	})

	t.Run("another identity's block refused", func(t *testing.T) {
		// Mallory signs with her own block under alice's address and From:
		// the envelope verifies, alice's key log does not list her key.
		mallory := testIdentity(t, seedMallory, 4)
		msg := composeTo(t, gen0, []*identity.Identity{bob}, "forged", "x")
		e := &mail.Envelope{Time: testNow, From: addr, Sender: mallory.Public().Block, Recipients: []block.ID{bob.ID()}}
		e.Encode(msg)
		e.Signature = mallory.Sign(block.LabelEnvelope, e.SignedBytes())
		net := newMemNet(testNow)
		sendEnvelope(t, net, e.Encode(msg), bob)
		rep := newMailbox(t, bob).fetch(t, c, net, FetchOptions{KeyLogs: logs})
		if len(rep.Delivered) != 0 || len(rep.Rejected) != 1 || !errors.Is(rep.Rejected[0], record.ErrWrongKey) {
			t.Fatalf("mallory's block signing as alice: %+v, rejected %v", rep, rep.Rejected)
		}
		// Without key logs it is refused all the same.
		net = newMemNet(testNow)
		sendEnvelope(t, net, e.Encode(msg), bob)
		if rep := newMailbox(t, bob).fetch(t, c, net, FetchOptions{}); len(rep.Rejected) != 1 || !errors.Is(rep.Rejected[0], ErrSenderUnverified) {
			t.Fatalf("mallory's block signing as alice, no key logs: %+v, rejected %v", rep, rep.Rejected)
		}
	})
}
