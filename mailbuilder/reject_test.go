package mailbuilder

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/pow"
)

// sendEnvelope stores envelope bytes as a mail sealed to each of sealTo,
// whatever the envelope says: what a dishonest sender can do.
func sendEnvelope(t *testing.T, c *Codec, net Network, envelope []byte, sealTo ...*identity.Identity) *Built {
	t.Helper()
	keys, err := readKeys(detRand(3), len(sealTo), make([]byte, messageIDSize))
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.seal(context.Background(), envelope, publicKeys(sealTo...), keys, int64(len(envelope)), BuildOptions{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	b.Lifetime = block.MaxLifetime
	if err := Send(context.Background(), net, b, SendOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Release)
	return b
}

// envelopeBy returns an envelope carrying msg for recipients, with
// sender's pubkey block, signed by signer.
func envelopeBy(sender, signer *identity.Identity, msg []byte, recipients ...*identity.Identity) []byte {
	e := &Envelope{Time: testNow, Sender: sender.Public().Block, Message: msg}
	for _, r := range recipients {
		e.Recipients = append(e.Recipients, r.ID())
	}
	e.Signature = signer.Sign(block.LabelEnvelope, e.appendSigned(nil))
	return e.Encode()
}

func TestFetchRejectsForgedMail(t *testing.T) {
	alice, bob, carol := testIdentity(t, seedAlice, 4), testIdentity(t, seedBob, 5), testIdentity(t, seedCarol, 4)
	mallory := testIdentity(t, seedMallory, 4)
	fromAlice := composeTo(t, alice, []*identity.Identity{bob}, "hi", "from alice")
	brokenSender := bytes.Clone(alice.Public().Block)
	brokenSender[100] ^= 1
	withSender := func(env []byte, sender []byte) []byte {
		e, err := DecodeEnvelope(env)
		if err != nil {
			t.Fatal(err)
		}
		e.Sender = sender
		return e.Encode()
	}
	for _, tc := range []struct {
		name     string
		envelope []byte
		want     error
		says     string
	}{
		{"signed for another recipient and forwarded",
			envelopeBy(alice, alice, composeTo(t, alice, []*identity.Identity{carol}, "hi", "for carol"), carol),
			ErrNotRecipient, "not for " + bob.Address()},
		{"signature by someone other than the sender",
			envelopeBy(alice, mallory, fromAlice, bob),
			ErrSignature, "signature is not by the envelope's sender " + alice.Address()},
		{"From names someone other than the signer",
			envelopeBy(mallory, mallory, fromAlice, bob),
			ErrFromMismatch, "mail claims to be from " + alice.Address() + " but is signed by " + mallory.Address()},
		{"sender pubkey block broken",
			withSender(envelopeBy(alice, alice, fromAlice, bob), brokenSender),
			ErrSender, "sender pubkey block does not verify"},
		{"envelope with trailing bytes",
			append(envelopeBy(alice, alice, fromAlice, bob), 0),
			ErrTrailing, "1 bytes after the signature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testCodec(t)
			net := newMemNet(testNow)
			bad := sendEnvelope(t, c, net, tc.envelope, bob)
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
			if e, _ := mb.st.Lookup(bad.Index[0].ID); e.Outcome != OutcomeRejected || e.Reason == "" {
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
	keys, _ := readKeys(detRand(5), 1, make([]byte, messageIDSize))
	env, err := signEnvelope(&Envelope{Time: testNow, Message: msg, Recipients: []block.ID{bob.ID()}}, alice)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.seal(context.Background(), env, []*identity.PublicKey{&cheap}, keys, 0, BuildOptions{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	blk := b.Index[0].Bytes
	for block.CommonPrefixLen(block.Sum(blk), bob.ID()) >= 8 {
		blk[len(blk)-1]++ // keep it under-ground
	}
	for _, d := range b.Data {
		net.putRaw(d.Bytes)
	}
	id := net.putRaw(blk)

	if _, err := c.Open(context.Background(), net, bob, id, blk, OpenOptions{}); !errors.Is(err, ErrProofOfWork) {
		t.Fatalf("Open: %v, want ErrProofOfWork", err)
	}
	mb := newMailbox(t, bob)
	rep := mb.fetch(t, c, net, FetchOptions{})
	if len(rep.Delivered) != 0 || len(rep.Rejected) != 1 || !errors.Is(rep.Rejected[0], ErrProofOfWork) {
		t.Fatalf("report %+v", rep)
	}
	t.Logf("error shown: %v", rep.Rejected[0])
	if n := net.getCount(id); n != 0 {
		t.Fatalf("the under-ground index block was fetched %d times", n)
	}
	if e, _ := mb.st.Lookup(id); e.Outcome != OutcomeRejected {
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
	if e, _ := mb.st.Lookup(b.Index[0].ID); e.Outcome != OutcomeNotForMe {
		t.Fatalf("state remembers %v", e.Outcome)
	}
	if !net.has(b.Index[0].ID) {
		t.Fatal("someone else's index block was deleted")
	}
}

func TestFetchRejectsDecompressionBomb(t *testing.T) {
	c := testCodec(t)
	net := newMemNet(testNow)
	bob := testIdentity(t, seedBob, 4)
	// 40 MiB of zeros compress to a few KiB; the decoder must stop at
	// MaxDecompressed instead of allocating it all.
	b := sendEnvelope(t, c, net, make([]byte, 40<<20), bob)
	if size := b.DataShards * b.ShardSize; size > 64<<10 {
		t.Fatalf("the bomb takes %d bytes of shards, not a bomb", size)
	}
	rep := newMailbox(t, bob).fetch(t, c, net, FetchOptions{})
	if len(rep.Rejected) != 1 || !errors.Is(rep.Rejected[0], ErrTooLarge) {
		t.Fatalf("report %+v", rep)
	}
}

func TestFetchRejectsStaleMail(t *testing.T) {
	c := testCodec(t)
	net := newMemNet(testNow)
	alice, bob := testIdentity(t, seedAlice, 4), testIdentity(t, seedBob, 4)
	msg := composeTo(t, alice, []*identity.Identity{bob}, "old", "replayed")
	b, err := c.Build(context.Background(), BuildInput{
		Sender: alice, Recipients: publicKeys(bob), Message: msg, Now: testNow.Add(-replayWindow - time.Hour),
	}, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	if err := Send(context.Background(), net, b, SendOptions{}); err != nil {
		t.Fatal(err)
	}
	rep := newMailbox(t, bob).fetch(t, c, net, FetchOptions{})
	if len(rep.Rejected) != 1 || !errors.Is(rep.Rejected[0], ErrStale) {
		t.Fatalf("report %+v", rep)
	}
}

func TestBuildRefusesWhatRecipientsWouldReject(t *testing.T) {
	c := testCodec(t)
	alice, bob := testIdentity(t, seedAlice, 4), testIdentity(t, seedBob, 4)
	good := composeTo(t, alice, []*identity.Identity{bob}, "s", "t")
	many := make([]*identity.PublicKey, MaxRecipients+1)
	for i := range many {
		many[i] = testIdentity(t, byte(100+i), 0).Public()
	}
	for _, tc := range []struct {
		name string
		in   BuildInput
		want error
	}{
		{"From is not the sender", BuildInput{Sender: bob, Recipients: publicKeys(alice), Message: good}, ErrFromMismatch},
		{"no From header", BuildInput{Sender: alice, Recipients: publicKeys(bob), Message: []byte("Subject: x\r\n\r\nbody")}, ErrFromHeader},
		{"no recipients", BuildInput{Sender: alice, Message: good}, ErrRecipientCount},
		{"too many recipients", BuildInput{Sender: alice, Recipients: many, Message: good}, ErrRecipientCount},
		{"duplicate recipient", BuildInput{Sender: alice, Recipients: publicKeys(bob, bob), Message: good}, ErrDuplicateRecipient},
		{"message too large", BuildInput{Sender: alice, Recipients: publicKeys(bob), Message: append(bytes.Clone(good), make([]byte, MaxMessageSize)...)}, ErrMessageSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Now = testNow
			if _, err := c.Build(context.Background(), tc.in, BuildOptions{}); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}
