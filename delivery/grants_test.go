package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/grant"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
)

// grantD is the difficulty of the recipients in these tests: two bits
// above mail.RouteBits, so a granted block lacks the full work three
// times in four.
const grantD = mail.RouteBits + 2

// sendClaiming builds a mail from sender to r claiming claim (nil: none,
// full work) and stores it. With lowWork, it is built again until its
// index block lacks the full work, so the test sees the claim decide.
func sendClaiming(t testing.TB, c *mail.Codec, net Network, sender, r *identity.Identity, claim *mail.GrantClaim, subject string, lowWork bool) *mail.Built {
	t.Helper()
	return sendAs(t, c, net, sender, r, r.Public(), claim, subject, lowWork)
}

// sendAs is sendClaiming with the pubkey block the sender seals and
// grinds to given apart from r.
func sendAs(t testing.TB, c *mail.Codec, net Network, sender, r *identity.Identity, to *identity.PublicKey, claim *mail.GrantClaim, subject string, lowWork bool) *mail.Built {
	t.Helper()
	for try := uint64(0); ; try++ {
		msg := composeTo(t, sender, []*identity.Identity{r}, subject, "text of "+subject)
		b, err := c.Build(context.Background(), mail.BuildInput{
			Sender: sender, Recipients: []*identity.PublicKey{to}, Grants: []*mail.GrantClaim{claim},
			Message: bytes.NewReader(msg), Size: int64(len(msg)), Now: testNow, Rand: detRand(msgSeed(msg) ^ try),
		}, mail.BuildOptions{Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		if lowWork {
			x, err := mail.UnmaskIndex(r, b.Index[0].ID, b.Index[0].Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if x.FullWork {
				b.Release()
				continue
			}
		}
		if err := Store(context.Background(), net, b, SendOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Release)
		return b
	}
}

func TestGrantedMailArrivesWithLowWork(t *testing.T) {
	c, net := testCodec(t), newMemNet(testNow)
	alice, bob := testIdentity(t, seedAlice, 4), testIdentity(t, seedBob, grantD)
	bobs := grant.NewTable()
	g, err := bobs.Issue(bob.ID(), alice.ID(), testNow, detRand(1))
	if err != nil {
		t.Fatal(err)
	}
	b := sendClaiming(t, c, net, alice, bob, g.Claim(), "granted", true)
	if cpl := block.CommonPrefixLen(b.Index[0].ID, bob.ID()); cpl < mail.RouteBits {
		t.Fatalf("granted index block shares %d bits with bob, the routing prefix is %d", cpl, mail.RouteBits)
	}
	mb := newMailbox(t, bob)
	rep := mb.fetch(t, c, net, FetchOptions{Grants: bobs})
	if len(rep.Delivered) != 1 || rep.Granted != 1 || len(rep.Rejected) != 0 {
		t.Fatalf("report %+v, want one mail delivered under the grant", rep)
	}
	if net.has(b.Index[0].ID) {
		t.Fatal("the index block is still stored after delivery")
	}
	// Without the table the same kind of mail is refused: the grant is
	// what let it in.
	sendClaiming(t, c, net, alice, bob, g.Claim(), "granted again", true)
	rep = mb.fetch(t, c, net, FetchOptions{})
	if len(rep.Delivered) != 0 || len(rep.Rejected) != 1 || !errors.Is(rep.Rejected[0].Err, grant.ErrUnknown) {
		t.Fatalf("report %+v, want the claim refused without the grant table", rep)
	}
}

// TestClaimsAreRefusedWithTheirOwnReason: every way of claiming a grant
// one does not rightly hold is refused, with its own reason, and the
// refused index block is deleted as a delivered one is.
func TestClaimsAreRefusedWithTheirOwnReason(t *testing.T) {
	c := testCodec(t)
	alice, bob, carol, dave := testIdentity(t, seedAlice, 4), testIdentity(t, seedBob, grantD), testIdentity(t, seedCarol, 4), testIdentity(t, seedDave, grantD)
	bobs, daves := grant.NewTable(), grant.NewTable()
	ga, _ := bobs.Issue(bob.ID(), alice.ID(), testNow, detRand(1))
	gd, _ := daves.Issue(dave.ID(), alice.ID(), testNow, detRand(2))
	gw, _ := bobs.Issue(bob.ID(), carol.ID(), testNow, detRand(3))
	bobs.Withdraw(carol.ID(), testNow)
	forged := ga.Claim()
	forged.Key[0] ^= 1
	cases := []struct {
		name   string
		sender *identity.Identity
		claim  *mail.GrantClaim
		want   error
	}{
		{"no claim at low work", alice, &mail.GrantClaim{}, mail.ErrProofOfWork},
		{"made-up grant", carol, &mail.GrantClaim{ID: [16]byte{1, 2, 3}, Key: [32]byte{4}}, grant.ErrUnknown},
		{"another recipient's grant", alice, gd.Claim(), grant.ErrUnknown},
		{"withdrawn grant", carol, gw.Claim(), grant.ErrWithdrawn},
		{"known ID, wrong key", carol, forged, grant.ErrForged},
		{"stolen grant used by another sender", carol, ga.Claim(), grant.ErrTransplanted},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			net := newMemNet(testNow)
			claim := tc.claim
			if *claim == (mail.GrantClaim{}) {
				claim = nil // the sender asks for no grant: it grinds the full work, then we cut it down
			}
			var b *mail.Built
			if claim == nil {
				b = sendLowWorkNoClaim(t, c, net, tc.sender, bob)
			} else {
				b = sendClaiming(t, c, net, tc.sender, bob, claim, tc.name, true)
			}
			mb := newMailbox(t, bob)
			rep := mb.fetch(t, c, net, FetchOptions{Grants: bobs})
			if len(rep.Delivered) != 0 || len(rep.Rejected) != 1 || !errors.Is(rep.Rejected[0].Err, tc.want) {
				t.Fatalf("report %+v (rejected: %v), want one refusal for %v", rep, rep.Rejected, tc.want)
			}
			if net.has(b.Index[0].ID) {
				t.Fatal("a refused claim's index block was not deleted (deletion must not tell a refusal from a delivery)")
			}
		})
	}
}

// sendLowWorkNoClaim stores a mail to r ground only to r's routing
// prefix that claims no grant: what a stranger who will not pay sends.
func sendLowWorkNoClaim(t testing.TB, c *mail.Codec, net Network, sender, r *identity.Identity) *mail.Built {
	t.Helper()
	low := *r.Public()
	low.Difficulty = mail.RoutePrefix(r.Public().Difficulty)
	return sendAs(t, c, net, sender, r, &low, nil, "cheap", true)
}

// TestForgedClaimsCostBoundedWork: more forged claims than a fetch opens
// cost bob at most the bound of spec 17.5, counted, and do not keep a
// mail with the full work waiting.
func TestForgedClaimsCostBoundedWork(t *testing.T) {
	c, net := testCodec(t), newMemNet(testNow)
	alice, bob, mallory := testIdentity(t, seedAlice, 4), testIdentity(t, seedBob, grantD), testIdentity(t, seedMallory, 4)
	bobs := grant.NewTable()
	// A smaller cap than the spec's keeps the test cheap; the code
	// path is the same.
	const limit = 8
	const junk = limit + 6
	for i := range junk {
		claim := &mail.GrantClaim{ID: [16]byte{byte(i), byte(i >> 8), 1}, Key: [32]byte{byte(i)}}
		sendClaiming(t, c, net, mallory, bob, claim, fmt.Sprintf("junk %d", i), true)
	}
	real := sendClaiming(t, c, net, alice, bob, nil, "full work", false)
	mb := newMailbox(t, bob)
	rep := mb.fetch(t, c, net, FetchOptions{Grants: bobs, MaxClaims: limit})
	if len(rep.Delivered) != 1 || rep.Delivered[0].Index != real.Index[0].ID {
		t.Fatalf("the mail with the full work was not delivered in the first fetch: %d delivered, %d refused", len(rep.Delivered), len(rep.Rejected))
	}
	keys := len(bob.DecryptionKeys())
	w := rep.Work
	t.Logf("%d forged claims and one real mail: %+v", junk, w)
	switch {
	case w.Fetched != junk+1:
		t.Fatalf("fetched %d index blocks, %d listed", w.Fetched, junk+1)
	case w.Decapsulations > w.Fetched*keys:
		t.Fatalf("%d decapsulations for %d blocks and %d keys", w.Decapsulations, w.Fetched, keys)
	case w.Claims > limit:
		t.Fatalf("opened %d claims, the cap is %d", w.Claims, limit)
	case w.ClaimOpens > w.Claims*keys:
		t.Fatalf("%d AEAD opens for %d claims and %d keys", w.ClaimOpens, w.Claims, keys)
	case w.ClaimBytes > int64(w.ClaimOpens)*block.MaxBlockSize:
		t.Fatalf("%d bytes opened in %d opens", w.ClaimBytes, w.ClaimOpens)
	}
	// Each forged claim fully opened is refused; those over the cap
	// wait (and the next LIST starts over), none is delivered.
	if opened := len(rep.Rejected); opened+rep.Remaining != junk || opened > limit {
		t.Fatalf("%d refused and %d left of %d forged claims", opened, rep.Remaining, junk)
	}
	left := rep.Remaining
	rep = mb.fetch(t, c, net, FetchOptions{Grants: bobs, MaxClaims: limit})
	if len(rep.Delivered) != 0 || len(rep.Rejected) != left || rep.Remaining != 0 {
		t.Fatalf("second fetch: %d delivered, %d refused, %d left; want the %d left refused", len(rep.Delivered), len(rep.Rejected), rep.Remaining, left)
	}
}

// TestRefusedClaimFetchesNoDataBlocks: a claim refused at spec 17.4
// steps 2 to 4 (no claim, unknown, withdrawn, forged) is decided by the
// index block alone, and its data blocks are never fetched (17.8): a
// stranger's junk costs no bandwidth, and whoever holds the data blocks
// learns nothing of the recipient's fetching from them. A granted mail's
// data blocks are fetched, so the count below can see a fetch.
func TestRefusedClaimFetchesNoDataBlocks(t *testing.T) {
	c, net := testCodec(t), newMemNet(testNow)
	alice, bob, carol := testIdentity(t, seedAlice, 4), testIdentity(t, seedBob, grantD), testIdentity(t, seedCarol, 4)
	bobs := grant.NewTable()
	ga, _ := bobs.Issue(bob.ID(), alice.ID(), testNow, detRand(1))
	gc, _ := bobs.Issue(bob.ID(), carol.ID(), testNow, detRand(3))
	bobs.Withdraw(carol.ID(), testNow)
	forged := ga.Claim()
	forged.Key[0] ^= 1
	refused := []*mail.Built{
		sendLowWorkNoClaim(t, c, net, carol, bob),
		sendClaiming(t, c, net, carol, bob, &mail.GrantClaim{ID: [16]byte{9}, Key: [32]byte{9}}, "made up", true),
		sendClaiming(t, c, net, carol, bob, gc.Claim(), "withdrawn", true),
		sendClaiming(t, c, net, carol, bob, forged, "forged", true),
	}
	granted := sendClaiming(t, c, net, alice, bob, ga.Claim(), "granted", true)
	rep := newMailbox(t, bob).fetch(t, c, net, FetchOptions{Grants: bobs})
	if len(rep.Delivered) != 1 || len(rep.Rejected) != len(refused) {
		t.Fatalf("%d delivered, %d refused (%v); want 1 and %d", len(rep.Delivered), len(rep.Rejected), rep.Rejected, len(refused))
	}
	fetched := func(b *mail.Built) int {
		n := 0
		for _, id := range b.ShardIDs {
			n += net.getCount(id)
		}
		return n
	}
	if fetched(granted) == 0 {
		t.Fatal("the granted mail's data blocks were not fetched, yet it was delivered")
	}
	for i, b := range refused {
		if n := fetched(b); n != 0 {
			t.Errorf("refused claim %d: its data blocks were fetched %d times", i, n)
		}
	}
}

// TestReplayedGrantedMailIsNotOpenedAgain: a granted mail's index block
// stored again after delivery (by a storer that kept a copy, or by its
// sender) is skipped by the processed set: it is neither delivered twice
// nor opened again as a claim, so replaying costs bob nothing.
func TestReplayedGrantedMailIsNotOpenedAgain(t *testing.T) {
	c, net := testCodec(t), newMemNet(testNow)
	alice, bob := testIdentity(t, seedAlice, 4), testIdentity(t, seedBob, grantD)
	bobs := grant.NewTable()
	g, _ := bobs.Issue(bob.ID(), alice.ID(), testNow, detRand(1))
	b := sendClaiming(t, c, net, alice, bob, g.Claim(), "once", true)
	mb := newMailbox(t, bob)
	if rep := mb.fetch(t, c, net, FetchOptions{Grants: bobs}); len(rep.Delivered) != 1 || rep.Granted != 1 {
		t.Fatalf("first fetch: %+v", rep)
	}
	if net.has(b.Index[0].ID) {
		t.Fatal("the index block was not deleted")
	}
	net.putRaw(b.Index[0].Bytes)
	rep := mb.fetch(t, c, net, FetchOptions{Grants: bobs})
	if len(rep.Delivered) != 0 || rep.Skipped != 1 || rep.Work.Fetched != 0 || rep.Work.Claims != 0 {
		t.Fatalf("replayed: %d delivered, %d skipped, work %+v; want it skipped unfetched", len(rep.Delivered), rep.Skipped, rep.Work)
	}
}
