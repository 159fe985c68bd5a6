package bridge

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/node"
	"github.com/flowmail/flowmail/record"
	"github.com/flowmail/flowmail/testnet"
)

// A sender that rotated its key submits through its bridge as its
// unchanged address (the envelope carries it, spec 9.2); the recipient's
// bridge checks the new key against the sender's key log and delivers the
// mail as from that address.
func TestBridgeDeliversMailFromARotatedSender(t *testing.T) {
	s := newScene(t, "alice", "bob")
	alice, bob := s.users[0], s.users[1]
	next, err := alice.DerivedNextKey()
	if err != nil {
		t.Fatal(err)
	}
	log, err := record.NewKeyLog(alice.Public().Block)
	if err != nil {
		t.Fatal(err)
	}
	rot, err := record.Rotate(log, alice.Identity, next, 4, time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := rot.Log.KeyLog.State()
	if err != nil {
		t.Fatal(err)
	}
	// Key logs as the DHT would answer them once alice published hers.
	logs := keyLogsFunc(func(_ context.Context, addr block.ID) (record.KeyState, error) {
		switch addr {
		case alice.ID():
			return rotated, nil
		case bob.ID():
			return record.InitialState(bob.Public()), nil
		}
		return record.KeyState{}, fmt.Errorf("%w: no key log for %s", node.ErrNotFound, addr.Short())
	})
	aev, bev := newEvents(), newEvents()
	acfg := bridgeConfig(&testnet.User{Identity: rot.Identity, Home: alice.Home}, s.client(t), aev)
	acfg.KeyLogs = logs
	bcfg := bridgeConfig(bob, s.client(t), bev)
	bcfg.KeyLogs = logs
	a, apw := startBridge(t, acfg)
	b, _ := startBridge(t, bcfg)
	waitStartFetch(t, s.ctx, bev)

	msg, _ := composeWithAttachment(t, alice.ID(), []block.ID{bob.ID()}, "after rotating", 100)
	if err := smtpSend(t, a, apw, []string{mail.HeaderAddress(bob.ID())}, msg); err != nil {
		t.Fatalf("submitting: %v", err)
	}
	if e := waitSent(t, s.ctx, aev); e.err != nil {
		t.Fatalf("sending: %v", e.err)
	}
	rep := waitFetch(t, s.ctx, b, bev)
	if len(rep.Delivered) != 1 || rep.Delivered[0].From != alice.ID() {
		t.Fatalf("bob's bridge after alice rotated: delivered %+v, rejected %v, deferred %v", rep.Delivered, rep.Rejected, rep.Deferred)
	}
}
