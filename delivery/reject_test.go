package delivery

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/mailforge"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
	"github.com/flowmail/flowmail/pow"
)

func TestFetchRejectsForgedMail(t *testing.T) {
	alice, bob, carol := testIdentity(t, seedAlice, 4), testIdentity(t, seedBob, 5), testIdentity(t, seedCarol, 4)
	mallory := testIdentity(t, seedMallory, 4)
	fromAlice := composeTo(t, alice, []*identity.Identity{bob}, "hi", "from alice")
	brokenSender := bytes.Clone(alice.Public().Block)
	brokenSender[100] ^= 1
	withSender := func(env []byte, sender []byte) []byte {
		e, msg, err := mail.DecodeEnvelope(env)
		if err != nil {
			t.Fatal(err)
		}
		e.Sender = sender
		return e.Encode(msg)
	}
	for _, tc := range []struct {
		name     string
		envelope []byte
		want     error
		says     string
	}{
		{"signed for another recipient and forwarded",
			envelopeBy(alice, alice, composeTo(t, alice, []*identity.Identity{carol}, "hi", "for carol"), carol),
			mail.ErrNotRecipient, "not for " + bob.Address()},
		{"signature by someone other than the sender",
			envelopeBy(alice, mallory, fromAlice, bob),
			mail.ErrSignature, "signature is not by the envelope's sender " + alice.Address()},
		{"From names someone other than the signer",
			envelopeBy(mallory, mallory, fromAlice, bob),
			mail.ErrFromMismatch, "mail claims to be from " + alice.Address() + " but is signed by " + mallory.Address()},
		{"sender pubkey block broken",
			withSender(envelopeBy(alice, alice, fromAlice, bob), brokenSender),
			mail.ErrSender, "sender pubkey block does not verify"},
		{"envelope with trailing bytes",
			append(envelopeBy(alice, alice, fromAlice, bob), 0),
			mail.ErrTrailing, "bytes after the envelope's signature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testCodec(t)
			net := newMemNet(testNow)
			bad := sendEnvelope(t, net, tc.envelope, bob)
			good := buildAndSend(t, c, net, alice, fromAlice, bob)
			defer good.Release()
			mb := newMailbox(t, bob)
			rep := mb.fetch(t, c, net, FetchOptions{})
			if len(rep.Delivered) != 1 || rep.Delivered[0].Index != good.Index[0].ID {
				t.Fatalf("the honest mail beside the forged one was not delivered: %+v", rep)
			}
			if len(rep.Rejected) != 1 || rep.Rejected[0].Index != bad.Index[0].ID {
				t.Fatalf("report %+v", rep)
			}
			err := rep.Rejected[0]
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("err = %v\nwant %v saying %q", err, tc.want, tc.says)
			}
			if e, _ := mb.st.Lookup(bad.Index[0].ID); e.Outcome != mailbox.OutcomeRejected || e.Reason == "" {
				t.Fatalf("state remembers %+v", e)
			}
			if !net.has(bad.Index[0].ID) {
				t.Fatal("a rejected mail's index block was deleted")
			}
			// Remembered: the next fetch does not try again.
			rep = mb.fetch(t, c, net, FetchOptions{Keep: true})
			if rep.Skipped != 1 || len(rep.Rejected) != 0 {
				t.Fatalf("second fetch retried the rejected mail: %+v", rep)
			}
		})
	}
}

func TestFetchNeverOpensUnderGroundIndex(t *testing.T) {
	c := testCodec(t)
	net := newMemNet(testNow)
	net.listAll = true // a dishonest node lists what it should not
	alice, bob := testIdentity(t, seedAlice, 4), testIdentity(t, seedBob, 8)
	msg := composeTo(t, alice, []*identity.Identity{bob}, "cheap", "no work done")

	// Seal the mail to bob but grind the index block to fewer bits than he
	// demands: 0 to 7 leading bits shared with his address.
	cheap := *bob.Public()
	cheap.Difficulty = 0
	b, err := mailforge.Seal(context.Background(), envelopeBy(alice, alice, msg, bob), []*identity.PublicKey{&cheap}, detRand(5))
	if err != nil {
		t.Fatal(err)
	}
	blk := b.Index[0].Bytes
	for block.CommonPrefixLen(block.Sum(blk), bob.ID()) >= 8 {
		blk[len(blk)-1]++ // keep it under-ground
	}
	for _, d := range b.Data {
		net.putRaw(d.Bytes)
	}
	id := net.putRaw(blk)

	if _, _, err := openTo(context.Background(), net, c, bob, id, blk, io.Discard, openOptions{}); !errors.Is(err, mail.ErrProofOfWork) {
		t.Fatalf("Open: %v, want mail.ErrProofOfWork", err)
	}
	mb := newMailbox(t, bob)
	rep := mb.fetch(t, c, net, FetchOptions{})
	if len(rep.Delivered) != 0 || len(rep.Rejected) != 1 || !errors.Is(rep.Rejected[0], mail.ErrProofOfWork) {
		t.Fatalf("report %+v", rep)
	}
	t.Logf("error shown: %v", rep.Rejected[0])
	if n := net.getCount(id); n != 0 {
		t.Fatalf("the under-ground index block was fetched %d times", n)
	}
	if e, _ := mb.st.Lookup(id); e.Outcome != mailbox.OutcomeRejected {
		t.Fatalf("state remembers %v", e.Outcome)
	}
	// Ground properly, the same mail is delivered.
	if _, err := pow.Solve(context.Background(), blk, bob.ID(), 8, pow.Options{Workers: 1}); err != nil {
		t.Fatal(err)
	}
	net.putRaw(blk)
	if rep := mb.fetch(t, c, net, FetchOptions{}); len(rep.Delivered) != 1 {
		t.Fatalf("the properly ground block: %+v", rep)
	}
}

func TestFetchSkipsOthersMailQuietly(t *testing.T) {
	c := testCodec(t)
	net := newMemNet(testNow)
	alice, bob := testIdentity(t, seedAlice, 4), testIdentity(t, seedBob, 4)
	carol := testIdentity(t, seedCarol, 0) // D = 0: her prefix is everything
	b := buildAndSend(t, c, net, alice, composeTo(t, alice, []*identity.Identity{bob}, "hi", "for bob"), bob)
	defer b.Release()
	mb := newMailbox(t, carol)
	rep := mb.fetch(t, c, net, FetchOptions{})
	if rep.NotForMe != 1 || len(rep.Delivered)+len(rep.Rejected)+len(rep.Deferred) != 0 {
		t.Fatalf("report %+v", rep)
	}
	if e, _ := mb.st.Lookup(b.Index[0].ID); e.Outcome != mailbox.OutcomeNotForMe {
		t.Fatalf("state remembers %v", e.Outcome)
	}
	if !net.has(b.Index[0].ID) {
		t.Fatal("someone else's index block was deleted")
	}
}

// TestFetchRejectsDecompressionBomb: a few KiB of shards that decompress
// to 64 MiB where the envelope claims 100 bytes of message are stopped at
// the claim, and nothing reaches the Maildir.
func TestFetchRejectsDecompressionBomb(t *testing.T) {
	c := testCodec(t)
	net := newMemNet(testNow)
	alice, bob := testIdentity(t, seedAlice, 4), testIdentity(t, seedBob, 4)
	e := &mail.Envelope{Time: testNow, From: alice.ID(), Sender: alice.Public().Block, Recipients: []block.ID{bob.ID()}, MessageLen: 100}
	b := sendEnvelope(t, net, append(e.AppendHead(nil), make([]byte, 64<<20)...), bob)
	if size := b.Layout.DataBytes(); size > 64<<10 {
		t.Fatalf("the bomb takes %d bytes of shards, not a bomb", size)
	}
	mb := newMailbox(t, bob)
	rep := mb.fetch(t, c, net, FetchOptions{})
	if len(rep.Rejected) != 1 || !errors.Is(rep.Rejected[0], mail.ErrTrailing) {
		t.Fatalf("report %+v", rep)
	}
	for _, sub := range []string{"new", "tmp"} {
		if files, _ := os.ReadDir(filepath.Join(mb.maildir, sub)); len(files) != 0 {
			t.Fatalf("the rejected mail left %d files in %s/", len(files), sub)
		}
	}
}

func TestFetchRejectsStaleMail(t *testing.T) {
	c := testCodec(t)
	net := newMemNet(testNow)
	alice, bob := testIdentity(t, seedAlice, 4), testIdentity(t, seedBob, 4)
	msg := composeTo(t, alice, []*identity.Identity{bob}, "old", "replayed")
	b, err := c.Build(context.Background(), mail.BuildInput{
		Sender: alice, Recipients: publicKeys(bob), Message: bytes.NewReader(msg), Size: int64(len(msg)), Now: testNow.Add(-mail.ReplayWindow - time.Hour),
	}, mail.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	if err := Store(context.Background(), net, b, SendOptions{}); err != nil {
		t.Fatal(err)
	}
	rep := newMailbox(t, bob).fetch(t, c, net, FetchOptions{})
	if len(rep.Rejected) != 1 || !errors.Is(rep.Rejected[0], mail.ErrStale) {
		t.Fatalf("report %+v", rep)
	}
}
