package bridge

import (
	"errors"
	"testing"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/mailbox"
	"github.com/flowmail/flowmail/testnet"
)

// TestFetchBesideTheBridgeDeliversOnceAndKeepsFlags: `flowmail fetch`
// run while the bridge serves the same home (Keep, so the mail stays
// listable) delivers into new/; the bridge numbers it, its own fetch
// finds it processed, and flags set over IMAP survive later fetches.
func TestFetchBesideTheBridgeDeliversOnceAndKeepsFlags(t *testing.T) {
	s := newScene(t, "alice", "bob")
	alice, bob := s.users[0], s.users[1]
	ev := newEvents()
	cfg := bridgeConfig(bob, s.client(t), ev)
	cfg.Keep = true
	b, _ := startBridge(t, cfg)
	waitStartFetch(t, s.ctx, ev)
	msg, _ := composeWithAttachment(t, alice.ID(), []block.ID{bob.ID()}, "fetched beside", 500)
	built, err := testnet.SendMail(s.ctx, s.client(t), alice.Identity, []block.ID{bob.ID()}, msg, nil)
	if err != nil {
		t.Fatal(err)
	}
	built.Release()
	external := func() *delivery.FetchReport {
		t.Helper()
		// The processed set is the bridge's only while a round runs; none
		// runs now (the interval is an hour and nothing kicked one).
		rep, err := testnet.FetchMail(s.ctx, s.client(t), bob, delivery.FetchOptions{Keep: true})
		if errors.Is(err, mailbox.ErrLocked) {
			t.Fatal("the bridge holds the processed set between rounds")
		}
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	if rep := external(); len(rep.Delivered) != 1 {
		t.Fatalf("external fetch: %+v", rep)
	}
	if rep := waitFetch(t, s.ctx, b, ev); len(rep.Delivered) != 0 || rep.Skipped != 1 {
		t.Fatalf("the bridge's fetch after the external one: %+v", rep)
	}
	in, err := b.store.Folder(mailbox.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	ms := in.Messages()
	if len(ms) != 1 {
		t.Fatalf("INBOX: %+v", ms)
	}
	if _, err := in.SetFlags([]uint32{ms[0].UID}, mailbox.FlagsAdd, mailbox.FlagSeen|mailbox.FlagFlagged); err != nil {
		t.Fatal(err)
	}
	if rep := external(); len(rep.Delivered) != 0 {
		t.Fatalf("second external fetch delivered again: %+v", rep)
	}
	waitFetch(t, s.ctx, b, ev)
	ms = in.Messages()
	if len(ms) != 1 || !ms[0].Flags.Has(mailbox.FlagSeen|mailbox.FlagFlagged) {
		t.Fatalf("INBOX after more fetches: %+v", ms)
	}
}
