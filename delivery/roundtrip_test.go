package delivery

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gomail "github.com/emersion/go-message/mail"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/mailforge"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
)

func TestSendFetchOneRecipient(t *testing.T) {
	c := testCodec(t)
	net := newMemNet(testNow)
	alice, bob := testIdentity(t, seedAlice, 4), testIdentity(t, seedBob, 6)
	msg := composeTo(t, alice, []*identity.Identity{bob}, "hello", "Hi Bob,\nthe first flowmail.\n")
	b := buildAndSend(t, c, net, alice, msg, bob)
	defer b.Release()

	if cpl := block.CommonPrefixLen(b.Index[0].ID, bob.ID()); cpl < 6 {
		t.Fatalf("index block ground to %d bits, bob demands 6", cpl)
	}
	for _, d := range b.Data {
		if h, _, _ := block.ParseHeader(d.Bytes); !h.HasDeletion {
			t.Fatal("a single recipient's data blocks must carry a deletion hash")
		}
	}
	mb := newMailbox(t, bob)
	rep := mb.fetch(t, c, net, FetchOptions{})
	if len(rep.Delivered) != 1 || len(rep.Rejected)+len(rep.Deferred) != 0 {
		t.Fatalf("report %+v", rep)
	}
	d := rep.Delivered[0]
	if got := readMaildirFile(t, d); !bytes.Equal(got, mailbox.ToLF(msg)) {
		t.Fatal("the Maildir file differs from the message sent")
	}
	if d.From != alice.ID() || d.Index != b.Index[0].ID || d.MessageID != b.MessageID || !d.Signed.Equal(testNow) || d.Subject != "hello" {
		t.Fatalf("delivered %+v", d)
	}
	if d.DeleteErr != nil {
		t.Fatalf("delete after delivery: %v", d.DeleteErr)
	}
	for _, x := range append(idsOf(b.Index), idsOf(b.Data)...) {
		if net.has(x) {
			t.Fatalf("block %s still stored after delivery", x.Short())
		}
	}
}

func TestThreeRecipientsShareShards(t *testing.T) {
	c := testCodec(t)
	net := newMemNet(testNow)
	alice := testIdentity(t, seedAlice, 4)
	rcpts := []*identity.Identity{testIdentity(t, seedBob, 5), testIdentity(t, seedCarol, 6), testIdentity(t, seedDave, 7)}
	photo := randomBytes(3<<20, 1)
	doc := bytes.Repeat([]byte("a page of text that compresses well. "), 1<<20/37)
	msg := composeTo(t, alice, rcpts, "photos", "See attached.",
		mail.Attachment{Name: "photo.jpg", ContentType: "image/jpeg", Data: photo},
		mail.Attachment{Name: "notes.txt", ContentType: "text/plain", Data: doc})
	if len(msg) < 5<<20 {
		t.Fatalf("message of %d bytes, want at least 5 MiB", len(msg))
	}
	b := buildAndSend(t, c, net, alice, msg, rcpts...)
	defer b.Release()

	if got, want := net.putCount(), len(b.Data)+3; got != want {
		t.Fatalf("%d Puts, want %d data blocks stored once plus 3 index blocks", got, want)
	}
	if l := b.Layout.Last; l.Parity != mail.ParityShards(l.Data) {
		t.Fatalf("%d data and %d parity shards", l.Data, l.Parity)
	}
	for _, d := range b.Data {
		if h, _, _ := block.ParseHeader(d.Bytes); h.HasDeletion {
			t.Fatal("with several recipients data blocks must not carry a deletion hash")
		}
	}
	for i, r := range rcpts {
		mb := newMailbox(t, r)
		rep := mb.fetch(t, c, net, FetchOptions{})
		// The others' index blocks share no prefix with r at these
		// difficulties only by chance; any that do are not for r.
		if len(rep.Delivered) != 1 || len(rep.Rejected)+len(rep.Deferred) != 0 {
			t.Fatalf("recipient %d: report %+v", i, rep)
		}
		if got := readMaildirFile(t, rep.Delivered[0]); !bytes.Equal(got, mailbox.ToLF(msg)) {
			t.Fatalf("recipient %d got different bytes", i)
		}
		if len(rep.Delivered[0].Recipients) != 3 {
			t.Fatalf("recipient %d: envelope lists %d recipients", i, len(rep.Delivered[0].Recipients))
		}
	}
	for _, x := range b.Index {
		if net.has(x.ID) {
			t.Fatal("an index block survived its recipient's fetch")
		}
	}
	for _, x := range b.Data {
		if !net.has(x.ID) {
			t.Fatal("a shared data block was deleted")
		}
	}
}

func TestFetchRebuildsAroundLostAndCorruptShards(t *testing.T) {
	alice, bob := testIdentity(t, seedAlice, 4), testIdentity(t, seedBob, 4)
	msg := composeTo(t, alice, []*identity.Identity{bob}, "big", "see attachment",
		mail.Attachment{Name: "x.bin", Data: randomBytes(1<<20, 2)})
	for _, tc := range []struct {
		name          string
		drop, corrupt func(k, m int) []int
	}{
		{"a third dropped, data first", func(k, m int) []int { return seq(0, m) }, nil},
		{"a third dropped, spread", func(k, m int) []int { return spread(k+m, m) }, nil},
		{"a third corrupted", nil, func(k, m int) []int { return seq(k-m/2, m) }},
		{"dropped and corrupted", func(k, m int) []int { return seq(0, m/2) }, func(k, m int) []int { return seq(k+m-(m-m/2), m-m/2) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testCodec(t)
			net := newMemNet(testNow)
			b := buildAndSend(t, c, net, alice, msg, bob)
			defer b.Release()
			k, m := b.Layout.Last.Data, b.Layout.Last.Parity
			if k < 4 {
				t.Fatalf("k = %d: the mail is too small for this test", k)
			}
			lost := map[int]bool{}
			if tc.drop != nil {
				for _, i := range tc.drop(k, m) {
					net.setDrop(b.Data[i].ID, true)
					lost[i] = true
				}
			}
			if tc.corrupt != nil {
				for _, i := range tc.corrupt(k, m) {
					net.setCorrupt(b.Data[i].ID, true)
					lost[i] = true
				}
			}
			if len(lost) != m {
				t.Fatalf("lost %d shards, want m = %d", len(lost), m)
			}
			rep := newMailbox(t, bob).fetch(t, c, net, FetchOptions{Keep: true})
			if len(rep.Delivered) != 1 {
				t.Fatalf("report %+v", rep)
			}
			if got := readMaildirFile(t, rep.Delivered[0]); !bytes.Equal(got, mailbox.ToLF(msg)) {
				t.Fatal("rebuilt mail differs")
			}
			// Shards are asked for in coding order, one more for each that
			// fails: exactly the shortest prefix holding k intact ones.
			want, intact := 0, 0
			for ; intact < k; want++ {
				if !lost[want] {
					intact++
				}
			}
			for i, d := range b.Data {
				if got := net.getCount(d.ID); got != btoi(i < want) {
					t.Fatalf("shard %d fetched %d times; want the first %d shards once each", i, got, want)
				}
			}
		})
	}
}

func TestFetchGetsNoParityWhenDataShardsArrive(t *testing.T) {
	s := sendOneMail(t, "big", "x", mail.Attachment{Name: "x.bin", Data: randomBytes(300<<10, 3)})
	c, net, b := s.c, s.net, s.b
	if rep := newMailbox(t, s.bob).fetch(t, c, net, FetchOptions{Keep: true}); len(rep.Delivered) != 1 {
		t.Fatalf("report %+v", rep)
	}
	for i, d := range b.Data {
		if got, want := net.getCount(d.ID), min(1, max(0, b.Layout.Last.Data-i)); got != want {
			t.Fatalf("shard %d (k=%d) fetched %d times, want %d", i, b.Layout.Last.Data, got, want)
		}
	}
}

func TestFetchDefersWhenTooManyShardsAreLost(t *testing.T) {
	s := sendOneMail(t, "big", "x", mail.Attachment{Name: "x.bin", Data: randomBytes(1<<20, 4)})
	c, net, b, bob, msg := s.c, s.net, s.b, s.bob, s.msg
	lost := spread(len(b.Data), b.Layout.Last.Parity+1)
	for _, i := range lost {
		net.setDrop(b.Data[i].ID, true)
	}
	mb := newMailbox(t, bob)
	rep := mb.fetch(t, c, net, FetchOptions{})
	if len(rep.Delivered) != 0 || len(rep.Deferred) != 1 {
		t.Fatalf("report %+v", rep)
	}
	err := rep.Deferred[0].Err
	if !errors.Is(err, mail.ErrShardsMissing) {
		t.Fatalf("err = %v, want mail.ErrShardsMissing", err)
	}
	t.Logf("error shown: %v", rep.Deferred[0])
	if e, _ := mb.st.Lookup(b.Index[0].ID); e.Outcome != mailbox.OutcomeDeferred {
		t.Fatalf("state remembers %v, want deferred", e.Outcome)
	}

	// Still lost an hour later: deferred again.
	rep = mb.fetch(t, c, net, FetchOptions{Now: testNow.Add(3 * DefaultSinceMargin)})
	if rep.Listed != 1 || len(rep.Deferred) != 1 {
		t.Fatalf("second fetch: report %+v", rep)
	}
	// The shards come back; the next fetch retries although its LIST no
	// longer reaches back to the index block.
	for _, i := range lost {
		net.setDrop(b.Data[i].ID, false)
	}
	rep = mb.fetch(t, c, net, FetchOptions{Now: testNow.Add(6 * DefaultSinceMargin)})
	if rep.Listed != 0 || len(rep.Delivered) != 1 {
		t.Fatalf("retry: report %+v", rep)
	}
	if got := readMaildirFile(t, rep.Delivered[0]); !bytes.Equal(got, mailbox.ToLF(msg)) {
		t.Fatal("retried mail differs")
	}
}

func TestProcessedSetPreventsDoubleDelivery(t *testing.T) {
	s := sendOneMail(t, "once", "only once")
	c, net := s.c, s.net
	mb := newMailbox(t, s.bob)
	if rep := mb.fetch(t, c, net, FetchOptions{Keep: true}); len(rep.Delivered) != 1 {
		t.Fatalf("first fetch: %+v", rep)
	}
	mb.reopen(t)
	if mb.st.Len() != 1 || !mb.st.LastList().Equal(testNow) {
		t.Fatalf("reopened state: %d entries, last list %v", mb.st.Len(), mb.st.LastList())
	}
	rep := mb.fetch(t, c, net, FetchOptions{Keep: true, Now: testNow.Add(1)})
	if rep.Listed != 1 || rep.Skipped != 1 || len(rep.Delivered) != 0 {
		t.Fatalf("second fetch: %+v", rep)
	}
	files, err := os.ReadDir(filepath.Join(mb.maildir, "new"))
	if err != nil || len(files) != 1 {
		t.Fatalf("Maildir new/ holds %d files (%v), want 1", len(files), err)
	}
}

func TestMaildirFileParsesAsMIME(t *testing.T) {
	pdf := randomBytes(70000, 5)
	s := sendOneMail(t, "Grüße ☃", "Hallo Bob, schöne Grüße.\n", mail.Attachment{Name: "report.pdf", ContentType: "application/pdf", Data: pdf})
	rep := newMailbox(t, s.bob).fetch(t, s.c, s.net, FetchOptions{})
	if len(rep.Delivered) != 1 {
		t.Fatalf("report %+v", rep)
	}
	f, err := os.Open(rep.Delivered[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := gomail.CreateReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := r.Header.Subject(); s != "Grüße ☃" {
		t.Fatalf("subject %q", s)
	}
	from, _ := r.Header.AddressList("From")
	if len(from) != 1 || from[0].Address != mail.HeaderAddress(s.alice.ID()) {
		t.Fatalf("From %v", from)
	}
	text, att := readParts(t, r)
	// Text parts travel with CRLF line ends (RFC 2046 canonical form) and
	// are stored with LF, as Maildir files are.
	if text != "Hallo Bob, schöne Grüße.\n" || len(att) != 1 || !bytes.Equal(att["report.pdf"], pdf) {
		t.Fatalf("text %q, attachments %d, pdf intact %v", text, len(att), bytes.Equal(att["report.pdf"], pdf))
	}
}

func seq(from, n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = from + i
	}
	return s
}

// spread picks n of total indices, evenly apart.
func spread(total, n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i * total / n
	}
	return s
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestFetchGivesUpOnMailWhoseShardsStayLost(t *testing.T) {
	s := sendOneMail(t, "lost", "x")
	for _, d := range s.b.Data {
		s.net.setDrop(d.ID, true)
	}
	mb := newMailbox(t, s.bob)
	// Ten attempts within a day: kept for later.
	for i := range giveUpAttempts {
		now := testNow.Add(time.Duration(i) * 2 * time.Hour)
		if rep := mb.fetch(t, s.c, s.net, FetchOptions{Now: now}); len(rep.Deferred) != 1 {
			t.Fatalf("attempt %d: %+v", i+1, rep)
		}
	}
	rep := mb.fetch(t, s.c, s.net, FetchOptions{Now: testNow.Add(giveUpAfter)})
	if len(rep.Rejected) != 1 || !errors.Is(rep.Rejected[0], mail.ErrShardsMissing) || !strings.Contains(rep.Rejected[0].Error(), "gave up after 11 attempts") {
		t.Fatalf("after a day: %+v", rep)
	}
	if rep := mb.fetch(t, s.c, s.net, FetchOptions{Now: testNow.Add(giveUpAfter + time.Hour)}); len(rep.Deferred)+len(rep.Rejected) != 0 {
		t.Fatalf("retried after giving up: %+v", rep)
	}
}

func TestFetchStopsWhenTheMaildirFails(t *testing.T) {
	s := sendOneMail(t, "disk", "x")
	mb := newMailbox(t, s.bob)
	if err := os.WriteFile(mb.maildir, []byte("a file, not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Fetch(context.Background(), s.net, s.c, s.bob, mb.st, FetchOptions{Maildir: mb.maildir, Now: testNow})
	if err == nil {
		t.Fatal("fetch into a broken Maildir succeeded")
	}
	if _, ok := mb.st.Lookup(s.b.Index[0].ID); ok {
		t.Fatal("a mail that could not be delivered was remembered")
	}
	if !s.net.has(s.b.Index[0].ID) {
		t.Fatal("an undelivered mail was deleted")
	}
	os.Remove(mb.maildir)
	if rep := mb.fetch(t, s.c, s.net, FetchOptions{}); len(rep.Delivered) != 1 {
		t.Fatalf("after the disk recovered: %+v", rep)
	}
}

func TestLookupPubkeyVerifiesWhatTheNetworkReturns(t *testing.T) {
	net := newMemNet(testNow)
	alice := testIdentity(t, seedAlice, 4)
	ctx := context.Background()
	if _, err := LookupPubkey(ctx, net, alice.ID()); !errors.Is(err, errNotFound) {
		t.Fatalf("unknown address: %v", err)
	}
	if err := net.Put(ctx, alice.Public().Block, time.Hour); err != nil {
		t.Fatal(err)
	}
	p, err := LookupPubkey(ctx, net, alice.ID())
	if err != nil || p.ID != alice.ID() || p.Difficulty != 4 {
		t.Fatalf("LookupPubkey = %v, %v", p, err)
	}
	net.setCorrupt(alice.ID(), true)
	if _, err := LookupPubkey(ctx, net, alice.ID()); err == nil || !strings.Contains(err.Error(), "returned a block with ID") {
		t.Fatalf("corrupted block: %v", err)
	}
}

func TestProgressReportsEveryPhaseInOrder(t *testing.T) {
	c := testCodec(t)
	alice := testIdentity(t, seedAlice, 4)
	rcpts := []*identity.Identity{testIdentity(t, seedBob, 10), testIdentity(t, seedCarol, 10)}
	msg := composeTo(t, alice, rcpts, "progress", "x")
	var got []mail.Progress
	b, err := c.Build(context.Background(), mail.BuildInput{Sender: alice, Recipients: publicKeys(rcpts...), Message: bytes.NewReader(msg), Size: int64(len(msg)), Now: testNow},
		mail.BuildOptions{Workers: 1, ProgressInterval: time.Microsecond, Progress: func(p mail.Progress) { got = append(got, p) }})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	net := newMemNet(testNow)
	if err := Store(context.Background(), net, b, SendOptions{Workers: 2, Progress: func(p mail.Progress) { got = append(got, p) }}); err != nil {
		t.Fatal(err)
	}
	var phases []string
	for _, p := range got {
		if len(phases) == 0 || phases[len(phases)-1] != p.Phase.String() {
			phases = append(phases, p.Phase.String())
		}
		if p.Recipients != 2 && p.Phase != mail.PhaseStore {
			t.Fatalf("%v reports %d recipients", p.Phase, p.Recipients)
		}
		if (p.Phase == mail.PhaseGrind) != (p.Recipient >= 0) {
			t.Fatalf("%v names recipient %d", p.Phase, p.Recipient)
		}
	}
	if s := strings.Join(phases, " "); s != "encode grind store" {
		t.Fatalf("phases %q", s)
	}
	last := got[len(got)-1]
	if last.Done != last.Total || last.Total != int64(len(msg)) {
		t.Fatalf("last store report %+v, want the message's %d bytes done", last, len(msg))
	}
	grinds := map[int]bool{}
	for _, p := range got {
		if p.Phase == mail.PhaseGrind {
			grinds[p.Recipient] = true
		}
	}
	if len(grinds) != 2 {
		t.Fatalf("grind reports for recipients %v", grinds)
	}
}

func TestFetchProgressFollowsEachMailsShards(t *testing.T) {
	c := testCodec(t)
	net := newMemNet(testNow)
	alice, bob := testIdentity(t, seedAlice, 4), testIdentity(t, seedBob, 4)
	var sent []*mail.Built
	for i, size := range []int{100, 300 << 10} {
		msg := composeTo(t, alice, []*identity.Identity{bob}, fmt.Sprint("mail ", i), "see attached",
			mail.Attachment{Name: "a.bin", Data: randomBytes(size, uint64(i))})
		b := buildAndSend(t, c, net, alice, msg, bob)
		defer b.Release()
		sent = append(sent, b)
	}
	var got []FetchProgress
	mb := newMailbox(t, bob)
	rep := mb.fetch(t, c, net, FetchOptions{Keep: true, Progress: func(p FetchProgress) { got = append(got, p) }})
	if len(rep.Delivered) != 2 {
		t.Fatalf("report %+v", rep)
	}
	// Per mail: a report at 0, then one per shard, up to the data shard count.
	byIndex := map[block.ID][]FetchProgress{}
	for _, p := range got {
		if p.Mails != 2 || p.Mail < 0 || p.Mail > 1 {
			t.Fatalf("report %+v: mail %d of %d", p, p.Mail, p.Mails)
		}
		byIndex[p.Index] = append(byIndex[p.Index], p)
	}
	for _, b := range sent {
		ps := byIndex[b.Index[0].ID]
		l := b.Layout.Last
		if len(ps) != l.Data+1 {
			t.Fatalf("%d reports for a mail of %d data shards", len(ps), l.Data)
		}
		for i, p := range ps {
			if p.Done != i || p.Needed != l.Data || p.Bytes != int64(i*l.ShardSize) || p.TotalBytes != int64(l.Data*l.ShardSize) || p.Mail != ps[0].Mail {
				t.Fatalf("report %d: %+v, want done %d of %d shards of %d bytes", i, p, i, l.Data, l.ShardSize)
			}
		}
	}
}

// TestMadeUpListEntriesCostBoundedWork: a LIST padded with thousands of
// IDs that nobody holds (they only need the right prefix, which costs a
// liar nothing) gets a bounded number of lookups per Fetch, never joins
// the retry list, and does not keep the real mail from arriving.
func TestMadeUpListEntriesCostBoundedWork(t *testing.T) {
	s := sendOneMail(t, "real", "the one real mail")
	made := make([]block.ID, 2*maxOpenPerFetch+10)
	for i := range made {
		made[i] = s.bob.ID()
		binary.BigEndian.PutUint64(made[i][24:], uint64(i)+1) // same prefix as bob
	}
	s.net.made = made
	mb := newMailbox(t, s.bob)
	var delivered int
	for round := 0; round < 3; round++ {
		rep := mb.fetch(t, s.c, s.net, FetchOptions{})
		delivered += len(rep.Delivered)
		if rep.Missing > maxOpenPerFetch || len(rep.Deferred) != 0 {
			t.Fatalf("round %d: %d missing, %d deferred", round, rep.Missing, len(rep.Deferred))
		}
		if want := len(made) + 1 - maxOpenPerFetch; rep.Remaining != want {
			t.Fatalf("round %d: %d left for later, want %d", round, rep.Remaining, want)
		}
		if got := mb.st.LastList(); rep.Remaining > 0 != got.IsZero() {
			t.Fatalf("round %d: last LIST %v with %d remaining: the next LIST must start over while work remains", round, got, rep.Remaining)
		}
	}
	if delivered != 1 {
		t.Fatalf("the real mail was delivered %d times", delivered)
	}
	if d := mb.st.Deferred(); len(d) != 0 {
		t.Fatalf("%d made-up IDs wait for a retry", len(d))
	}
	// Retried only when listed again, and new IDs went first: the first
	// made-up ID was tried in rounds 0 and 2 (after the new ones), not 1.
	if e, ok := mb.st.Lookup(made[0]); !ok || e.Outcome != mailbox.OutcomeMissing || e.Attempts != 2 {
		t.Fatalf("a made-up ID is remembered as %+v", e)
	}
}

// TestResealedEnvelopeIsNotDeliveredTwice: a co-recipient (or anyone who
// kept the envelope) can store a delivered mail again under a new index
// block; the recipient delivers one signed mail once.
func TestResealedEnvelopeIsNotDeliveredTwice(t *testing.T) {
	s := sendOneMail(t, "once", "deliver me once")
	mb := newMailbox(t, s.bob)
	rep := mb.fetch(t, s.c, s.net, FetchOptions{Keep: true})
	if len(rep.Delivered) != 1 {
		t.Fatalf("first fetch: %+v", rep)
	}
	env := &mail.Envelope{Time: testNow, MessageID: s.b.MessageID, From: s.alice.ID(), Sender: s.alice.Public().Block,
		Recipients: []block.ID{s.bob.ID()}}
	// Re-signed by alice here, as the test has no co-recipient's copy:
	// the bytes are what alice signed for this message ID.
	env.Encode(s.msg)
	env.Signature = s.alice.Sign(block.LabelEnvelope, env.SignedBytes())
	again, err := mailforge.Seal(context.Background(), env.Encode(s.msg), publicKeys(s.bob), detRand(11))
	if err != nil {
		t.Fatal(err)
	}
	defer again.Release()
	if err := Store(context.Background(), s.net, again, SendOptions{}); err != nil {
		t.Fatal(err)
	}
	rep = mb.fetch(t, s.c, s.net, FetchOptions{Keep: true})
	if len(rep.Delivered) != 0 || len(rep.Rejected) != 1 || !errors.Is(rep.Rejected[0].Err, ErrDuplicate) {
		t.Fatalf("the re-sealed mail: %+v", rep)
	}
	// And the memory survives a restart.
	mb.reopen(t)
	if first, ok := mb.st.DeliveredAs(messageKey(s.alice.ID(), s.b.MessageID)); !ok || first != s.b.Index[0].ID {
		t.Fatalf("after reopening, the delivered message is remembered as %v, %v", first, ok)
	}
}

// TestIncompleteListingStillDelivers: a LIST that reached only some nodes
// delivers what it found and lists from the same time next time.
func TestIncompleteListingStillDelivers(t *testing.T) {
	s := sendOneMail(t, "partial", "found by half a listing")
	s.net.listErr = errors.New("listing incomplete: 3 of 20 nodes did not answer")
	mb := newMailbox(t, s.bob)
	rep := mb.fetch(t, s.c, s.net, FetchOptions{})
	if len(rep.Delivered) != 1 || rep.ListErr == nil {
		t.Fatalf("report %+v", rep)
	}
	if !mb.st.LastList().IsZero() {
		t.Fatal("an incomplete listing moved the next LIST's start forward")
	}
}
