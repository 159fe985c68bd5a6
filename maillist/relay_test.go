package maillist

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gomail "github.com/emersion/go-message/mail"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/grant"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/mailtest"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
)

// memberD is what the members demand: the most a pubkey may, 2^32
// trials, which no test could grind. A copy the list sends without the
// member's grant never finishes; one under the grant grinds 2^RouteBits.
const memberD = block.MaxDifficulty

// party is one identity's fetching side: its grants, state and Maildir.
type party struct {
	me      *identity.Identity
	grants  *grant.Table
	st      *mailbox.State
	maildir string
}

func newParty(t *testing.T, seed byte, d int) *party {
	t.Helper()
	dir := t.TempDir()
	st, err := mailbox.OpenState(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &party{me: mailtest.Identity(t, seed, d), grants: grant.NewTable(), st: st, maildir: filepath.Join(dir, "Maildir")}
}

func (p *party) fetch(t *testing.T, ctx context.Context, c *mail.Codec, net *memNet) *delivery.FetchReport {
	t.Helper()
	rep, err := delivery.Fetch(ctx, net, c, p.me, p.st, delivery.FetchOptions{Maildir: p.maildir, Now: mailtest.Now, Grants: p.grants})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// post stores a mail from p to the list, with the list's full work
// (the list demands little).
func (p *party) post(t *testing.T, ctx context.Context, c *mail.Codec, net *memNet, list *identity.Identity, subject, text string) {
	t.Helper()
	msg, err := mail.Compose(&mail.Message{From: mail.Mailbox{Name: "Poster", Address: p.me.ID()}, To: []mail.Mailbox{{Address: list.ID()}},
		Subject: subject, Text: text, Date: mailtest.Now}, mailtest.Rand(uint64(len(subject))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := delivery.Send(ctx, net, c, mail.BuildInput{Sender: p.me, Recipients: []*identity.PublicKey{list.Public()},
		Message: bytes.NewReader(msg), Size: int64(len(msg)), Now: mailtest.Now}, delivery.SendOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestListPostReachesEveryMember: a list of three members who each
// granted it; one member's post reaches all three, re-sent by the list
// under each member's grant (the list grinds 2^RouteBits per member, not
// the 2^32 they demand), with the list's headers and the poster named.
// After one member withdraws its grant, the next post still reaches the
// other two and that member refuses its copy (spec 17.6: the list is not
// told). A stranger's post is not re-sent; "unsubscribe" takes its
// poster off the list.
func TestListPostReachesEveryMember(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a hang guard only
	defer cancel()
	c, err := mail.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	net := newMemNet()
	list := newParty(t, mailtest.Dave, 4)
	members := []*party{newParty(t, mailtest.Alice, memberD), newParty(t, mailtest.Bob, memberD), newParty(t, mailtest.Carol, memberD)}
	stranger := newParty(t, mailtest.Mallory, memberD)
	roster := &Roster{Name: "friends"}
	for _, m := range members {
		if _, err := roster.Add(m.me.ID()); err != nil {
			t.Fatal(err)
		}
		// Each member grants the list (grant.Attachment carries it in
		// a mail; its carriage is tested in grant and cmd).
		g, err := m.grants.Issue(m.me.ID(), list.me.ID(), mailtest.Now, mailtest.Rand(uint64(m.me.ID()[0])))
		if err != nil {
			t.Fatal(err)
		}
		list.grants.Hold(g)
	}
	lookup := func(_ context.Context, id block.ID) (*identity.PublicKey, error) {
		for _, p := range append(members, stranger) {
			if p.me.ID() == id {
				return p.me.Public(), nil
			}
		}
		return nil, errNotFound
	}
	// Each copy's grinding must expect 2^RouteBits trials: one that
	// expects the member's full 2^32 stops the test at once.
	var fullWork error
	relayCtx, stopRelay := context.WithCancel(ctx)
	defer stopRelay()
	relay := func(want int) []*RelayReport {
		t.Helper()
		rep := list.fetch(t, ctx, c, net)
		if len(rep.Delivered) != want {
			t.Fatalf("the list fetched %d posts (rejected %v), want %d", len(rep.Delivered), rep.Rejected, want)
		}
		var out []*RelayReport
		for _, d := range rep.Delivered {
			r, err := Relay(relayCtx, net, c, list.me, roster, list.grants, d, RelayOptions{
				Spool: t.TempDir(), Now: mailtest.Now, Lookup: lookup,
				Progress: func(m block.ID, p mail.Progress) {
					if p.Phase == mail.PhaseGrind && p.PoW.Expected > math.Exp2(mail.RouteBits) {
						fullWork = errors.New("the list ground " + identity.FormatAddress(m)[:12] + "'s full work")
						stopRelay()
					}
				},
			})
			if fullWork != nil {
				t.Fatal(fullWork)
			}
			if errors.Is(err, ErrNotMember) {
				out = append(out, nil)
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
		return out
	}

	members[0].post(t, ctx, c, net, list.me, "Hello list", "first post\r\n")
	reps := relay(1)
	if len(reps[0].Copies) != 3 {
		t.Fatalf("%d copies for 3 members", len(reps[0].Copies))
	}
	for _, cp := range reps[0].Copies {
		if cp.Err != nil || !cp.Granted {
			t.Fatalf("copy to %s: granted %v, %v", identity.FormatAddress(cp.Member), cp.Granted, cp.Err)
		}
	}
	for i, m := range members {
		rep := m.fetch(t, ctx, c, net)
		if len(rep.Delivered) != 1 {
			t.Fatalf("member %d got %d mails (rejected %v), want the post", i, len(rep.Delivered), rep.Rejected)
		}
		// A copy lacks the full work but for a 2^-16 chance; one that
		// lacks it came in under the grant.
		if rep.Granted != rep.Work.Claims {
			t.Fatalf("member %d: %d delivered under a grant, %d claims opened", i, rep.Granted, rep.Work.Claims)
		}
		checkCopy(t, rep.Delivered[0], list.me, members[0].me, "Hello list", "first post")
	}

	// Carol withdraws the list's grant; the list still holds it.
	if members[2].grants.Withdraw(list.me.ID(), mailtest.Now) != 1 {
		t.Fatal("no grant withdrawn")
	}
	members[1].post(t, ctx, c, net, list.me, "Second", "second post\r\n")
	reps = relay(1)
	for _, cp := range reps[0].Copies {
		if cp.Err != nil {
			t.Fatal(cp.Err)
		}
	}
	for i, m := range members[:2] {
		if rep := m.fetch(t, ctx, c, net); len(rep.Delivered) != 1 {
			t.Fatalf("member %d got %d mails, want the second post", i, len(rep.Delivered))
		}
	}
	rep := members[2].fetch(t, ctx, c, net)
	if rep.Work.Claims == 1 {
		if len(rep.Delivered) != 0 || len(rep.Rejected) != 1 || !errors.Is(rep.Rejected[0].Err, grant.ErrWithdrawn) {
			t.Fatalf("the member who withdrew: %d delivered, rejected %v; want the copy refused as withdrawn", len(rep.Delivered), rep.Rejected)
		}
	} else if len(rep.Delivered) != 1 {
		// The 2^-16 chance: the copy had the full work, and full work
		// is delivered as a stranger's would be (spec 17.6).
		t.Fatalf("a copy with the full work was not delivered: %v", rep.Rejected)
	}

	// A stranger's post is not re-sent.
	stranger.post(t, ctx, c, net, list.me, "Buy now", "spam\r\n")
	if reps := relay(1); reps[0] != nil {
		t.Fatalf("a stranger's post was re-sent: %+v", reps[0])
	}
	// Unsubscribe.
	members[0].post(t, ctx, c, net, list.me, "unsubscribe", "\r\n")
	reps = relay(1)
	if !reps[0].Post.Unsubscribe || len(reps[0].Copies) != 0 || roster.Has(members[0].me.ID()) || len(roster.Members) != 2 {
		t.Fatalf("unsubscribe: %+v, roster %d members", reps[0], len(roster.Members))
	}
	for i, m := range members[:2] {
		if rep := m.fetch(t, ctx, c, net); len(rep.Delivered) != 0 {
			t.Fatalf("member %d got %d mails after a stranger's post and an unsubscribe", i, len(rep.Delivered))
		}
	}
}

// checkCopy checks a member's copy of a post: from the list, with the
// poster named, the list's headers, and the post's subject and text.
func checkCopy(t *testing.T, d delivery.Delivered, list, poster *identity.Identity, subject, text string) {
	t.Helper()
	if d.From != list.ID() {
		t.Fatalf("copy signed by %s, want the list", identity.FormatAddress(d.From))
	}
	f, err := os.Open(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := gomail.CreateReader(f)
	if err != nil {
		t.Fatal(err)
	}
	h := r.Header
	listAddr, posterAddr := mail.HeaderAddress(list.ID()), mail.HeaderAddress(poster.ID())
	for field, want := range map[string]string{
		"From":             "via friends",
		"X-Original-From":  posterAddr,
		"Reply-To":         posterAddr,
		"List-Id":          "friends.",
		"List-Post":        "<mailto:" + listAddr + ">",
		"List-Unsubscribe": "?subject=unsubscribe",
	} {
		if got := h.Get(field); !strings.Contains(got, want) {
			t.Errorf("%s: %q, want it to hold %q", field, got, want)
		}
	}
	if s, _ := h.Subject(); s != subject {
		t.Errorf("Subject %q, want %q", s, subject)
	}
	p, err := r.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	body := new(bytes.Buffer)
	body.ReadFrom(p.Body)
	if !strings.Contains(body.String(), text) {
		t.Errorf("body %q, want %q", body.String(), text)
	}
}
