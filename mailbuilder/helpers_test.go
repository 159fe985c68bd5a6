package mailbuilder

import (
	"context"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

// testNow is the clock of every test: 2026-03-01T00:00:00Z.
var testNow = time.Unix(1772323200, 0)

var testCreated = time.Unix(1767225600, 0) // 2026-01-01T00:00:00Z

// Named test identities; difficulty stays low so grinding takes no time.
const (
	seedAlice = 1 + iota
	seedBob
	seedCarol
	seedDave
	seedMallory
)

func seedOf(b byte) (s [identity.SeedSize]byte) {
	for i := range s {
		s[i] = b*37 + byte(i)
	}
	return s
}

func testIdentity(t testing.TB, seed byte, difficulty int) *identity.Identity {
	t.Helper()
	id, err := identity.FromSeed(seedOf(seed), difficulty, testCreated)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// detRand is a deterministic randomness source for reproducible mails.
func detRand(seed uint64) io.Reader {
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	return rand.NewChaCha8(s)
}

func testCodec(t testing.TB) *Codec {
	t.Helper()
	c, err := NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// composeTo composes a mail from sender to recipients with the given
// attachments.
func composeTo(t testing.TB, from *identity.Identity, to []*identity.Identity, subject, text string, att ...Attachment) []byte {
	t.Helper()
	m := &Message{From: Mailbox{Name: "Sender", Address: from.ID()}, Subject: subject, Text: text, Date: testNow, Attachments: att}
	for _, r := range to {
		m.To = append(m.To, Mailbox{Address: r.ID()})
	}
	b, err := Compose(m, detRand(99))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func publicKeys(ids ...*identity.Identity) []*identity.PublicKey {
	p := make([]*identity.PublicKey, len(ids))
	for i, id := range ids {
		p[i] = id.Public()
	}
	return p
}

func msgSeed(msg []byte) uint64 {
	h := fnv.New64a()
	h.Write(msg)
	return h.Sum64()
}

// buildAndSend builds msg from sender to recipients and stores it in net.
func buildAndSend(t testing.TB, c *Codec, net Network, sender *identity.Identity, msg []byte, rcpts ...*identity.Identity) *Built {
	t.Helper()
	b, err := c.Build(context.Background(), BuildInput{
		// Randomness follows the message: two mails never share a message ID.
		Sender: sender, Recipients: publicKeys(rcpts...), Message: msg, Now: testNow, Rand: detRand(7 ^ msgSeed(msg)),
	}, BuildOptions{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := Send(context.Background(), net, b, SendOptions{}); err != nil {
		t.Fatal(err)
	}
	return b
}

// mailbox is one recipient's fetching side: its state and Maildir.
type mailbox struct {
	me      *identity.Identity
	stateD  string
	maildir string
	st      *State
}

func newMailbox(t testing.TB, me *identity.Identity) *mailbox {
	t.Helper()
	dir := t.TempDir()
	mb := &mailbox{me: me, stateD: filepath.Join(dir, "state"), maildir: filepath.Join(dir, "Maildir")}
	mb.reopen(t)
	t.Cleanup(func() { mb.st.Close() })
	return mb
}

func (mb *mailbox) reopen(t testing.TB) {
	t.Helper()
	if mb.st != nil {
		mb.st.Close()
	}
	st, err := OpenState(mb.stateD)
	if err != nil {
		t.Fatal(err)
	}
	mb.st = st
}

func (mb *mailbox) fetch(t testing.TB, c *Codec, net Network, opt FetchOptions) *FetchReport {
	t.Helper()
	opt.Maildir = mb.maildir
	if opt.Now.IsZero() {
		opt.Now = testNow
	}
	rep, err := c.Fetch(context.Background(), net, mb.me, mb.st, opt)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	return rep
}

func idsOf(bs []Block) []block.ID {
	ids := make([]block.ID, len(bs))
	for i, b := range bs {
		ids[i] = b.ID
	}
	return ids
}

// sentMail is one mail from alice to bob (difficulty 4 each) stored in a
// fresh network.
type sentMail struct {
	c          *Codec
	net        *memNet
	alice, bob *identity.Identity
	msg        []byte
	b          *Built
}

func sendOneMail(t testing.TB, subject, text string, att ...Attachment) *sentMail {
	t.Helper()
	s := &sentMail{c: testCodec(t), net: newMemNet(testNow), alice: testIdentity(t, seedAlice, 4), bob: testIdentity(t, seedBob, 4)}
	s.msg = composeTo(t, s.alice, []*identity.Identity{s.bob}, subject, text, att...)
	s.b = buildAndSend(t, s.c, s.net, s.alice, s.msg, s.bob)
	t.Cleanup(s.b.Release)
	return s
}

// readParts reads a MIME mail: its text part and its attachments by name.
func readParts(t testing.TB, r *mail.Reader) (text string, att map[string][]byte) {
	t.Helper()
	att = map[string][]byte{}
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			return text, att
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(p.Body)
		if err != nil {
			t.Fatal(err)
		}
		if h, ok := p.Header.(*mail.AttachmentHeader); ok {
			name, _ := h.Filename()
			att[name] = body
		} else {
			text = string(body)
		}
	}
}
