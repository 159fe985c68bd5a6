package testnet

import (
	"bytes"
	crand "crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/grant"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
)

// TestGrantsOverTheNetwork runs allow-lists over real QUIC on an 8-node
// loopback network: bob demands two bits more than the routing prefix;
// alice, granted, sends at the low work and her mail arrives; mallory's
// low-work mail with a made-up claim is refused; after bob withdraws
// alice's grant her next low-work mail is refused too. Every refused
// index block is gone from the network afterwards, as a delivered one is.
func TestGrantsOverTheNetwork(t *testing.T) {
	// Eight nodes, not mailScene's twenty: the package's time budget
	// under -race on a busy machine is what limits it.
	ctx := hangGuard(t)
	net := smallNet(t, ctx, 8, 4)
	c := client(t, ctx, net)
	us := users(t, ctx, c, mail.RouteBits+2, "alice", "bob", "mallory")
	alice, bob, mallory := us[0], us[1], us[2]
	bobs := grant.NewTable()
	g, err := bobs.Issue(bob.ID(), alice.ID(), time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := delivery.LookupPubkey(ctx, c, bob.ID())
	if err != nil {
		t.Fatal(err)
	}
	codec, err := mail.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	defer codec.Close()
	// send stores a mail to bob under claim, built again until its index
	// block lacks the full work (three times in four), so the claim
	// decides its fate.
	send := func(from *User, subject string, claim *mail.GrantClaim) *mail.Built {
		t.Helper()
		for {
			msg, err := mail.Compose(&mail.Message{From: mail.Mailbox{Address: from.ID()}, To: []mail.Mailbox{{Address: bob.ID()}}, Subject: subject, Text: "x", Date: time.Now()}, crand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			b, err := codec.Build(ctx, mail.BuildInput{Sender: from.Identity, Recipients: []*identity.PublicKey{key}, Grants: []*mail.GrantClaim{claim},
				Message: bytes.NewReader(msg), Size: int64(len(msg)), Now: time.Now()}, mail.BuildOptions{})
			if err != nil {
				t.Fatal(err)
			}
			x, err := mail.UnmaskIndex(bob.Identity, b.Index[0].ID, b.Index[0].Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if x.FullWork {
				b.Release()
				continue
			}
			if err := delivery.Store(ctx, c, b, delivery.SendOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(b.Release)
			return b
		}
	}
	fetch := func() *delivery.FetchReport {
		t.Helper()
		rep, err := FetchMail(ctx, c, bob, delivery.FetchOptions{Grants: bobs})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	gone := func(b *mail.Built) {
		t.Helper()
		if _, err := c.Get(ctx, b.Index[0].ID); err == nil {
			t.Fatalf("index block %s is still in the network", b.Index[0].ID.Short())
		}
	}

	granted := send(alice, "granted", g.Claim())
	junk := send(mallory, "junk", &mail.GrantClaim{ID: [16]byte{9}, Key: [32]byte{9}})
	rep := fetch()
	if len(rep.Delivered) != 1 || rep.Granted != 1 || rep.Delivered[0].Subject != "granted" {
		t.Fatalf("delivered %+v, want alice's granted mail", rep.Delivered)
	}
	if len(rep.Rejected) != 1 || !errors.Is(rep.Rejected[0].Err, grant.ErrUnknown) {
		t.Fatalf("refused %v, want mallory's made-up claim as an unknown grant", rep.Rejected)
	}
	gone(granted)
	gone(junk)

	bobs.Withdraw(alice.ID(), time.Now())
	late := send(alice, "after withdrawal", g.Claim())
	rep = fetch()
	if len(rep.Delivered) != 0 || len(rep.Rejected) != 1 || !errors.Is(rep.Rejected[0].Err, grant.ErrWithdrawn) {
		t.Fatalf("after withdrawal: delivered %d, refused %v; want one refusal for the withdrawn grant", len(rep.Delivered), rep.Rejected)
	}
	gone(late)
}
