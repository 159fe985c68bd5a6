package delivery

import (
	"bytes"
	"context"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"testing"

	gomail "github.com/emersion/go-message/mail"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/mailforge"
	"github.com/flowmail/flowmail/internal/mailtest"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
)

// Shared test fixtures under the names the tests use.
var (
	testNow      = mailtest.Now
	testIdentity = mailtest.Identity
	detRand      = mailtest.Rand
	randomBytes  = mailtest.RandomBytes
	publicKeys   = mailtest.PublicKeys
)

const (
	seedAlice   = mailtest.Alice
	seedBob     = mailtest.Bob
	seedCarol   = mailtest.Carol
	seedDave    = mailtest.Dave
	seedMallory = mailtest.Mallory
)

func testCodec(t testing.TB) *mail.Codec {
	t.Helper()
	c, err := mail.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// composeTo composes a mail from sender to recipients with the given
// attachments.
func composeTo(t testing.TB, from *identity.Identity, to []*identity.Identity, subject, text string, att ...mail.Attachment) []byte {
	t.Helper()
	m := &mail.Message{From: mail.Mailbox{Name: "Sender", Address: from.ID()}, Subject: subject, Text: text, Date: testNow, Attachments: att}
	for _, r := range to {
		m.To = append(m.To, mail.Mailbox{Address: r.ID()})
	}
	b, err := mail.Compose(m, detRand(99))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func msgSeed(msg []byte) uint64 {
	h := fnv.New64a()
	h.Write(msg)
	return h.Sum64()
}

// buildAndSend builds msg from sender to recipients in memory and
// stores it in net.
func buildAndSend(t testing.TB, c *mail.Codec, net Network, sender *identity.Identity, msg []byte, rcpts ...*identity.Identity) *mail.Built {
	t.Helper()
	b, err := c.Build(context.Background(), mail.BuildInput{
		// Randomness follows the message: two mails never share a message ID.
		Sender: sender, Recipients: publicKeys(rcpts...), Message: bytes.NewReader(msg), Size: int64(len(msg)), Now: testNow, Rand: detRand(7 ^ msgSeed(msg)),
	}, mail.BuildOptions{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := Store(context.Background(), net, b, SendOptions{}); err != nil {
		t.Fatal(err)
	}
	return b
}

// sendEnvelope stores envelope bytes as a mail sealed to each of sealTo,
// whatever the envelope says: what a dishonest sender can do.
func sendEnvelope(t *testing.T, net Network, envelope []byte, sealTo ...*identity.Identity) *mail.Built {
	t.Helper()
	b, err := mailforge.Seal(context.Background(), envelope, publicKeys(sealTo...), detRand(3))
	if err != nil {
		t.Fatal(err)
	}
	if err := Store(context.Background(), net, b, SendOptions{}); err != nil {
		t.Fatal(err)
	}
	return b
}

// envelopeBy returns an envelope carrying msg for recipients, with
// sender's pubkey block, signed by signer.
func envelopeBy(sender, signer *identity.Identity, msg []byte, recipients ...*identity.Identity) []byte {
	e := &mail.Envelope{Time: testNow, From: sender.ID(), Sender: sender.Public().Block}
	for _, r := range recipients {
		e.Recipients = append(e.Recipients, r.ID())
	}
	e.Encode(msg)
	e.Signature = signer.Sign(block.LabelEnvelope, e.SignedBytes())
	return e.Encode(msg)
}

// testMailbox is one recipient's fetching side: its state and Maildir.
type testMailbox struct {
	me      *identity.Identity
	stateD  string
	maildir string
	st      *mailbox.State
}

func newMailbox(t testing.TB, me *identity.Identity) *testMailbox {
	t.Helper()
	dir := t.TempDir()
	mb := &testMailbox{me: me, stateD: filepath.Join(dir, "state"), maildir: filepath.Join(dir, "Maildir")}
	mb.reopen(t)
	t.Cleanup(func() { mb.st.Close() })
	return mb
}

func (mb *testMailbox) reopen(t testing.TB) {
	t.Helper()
	if mb.st != nil {
		mb.st.Close()
	}
	st, err := mailbox.OpenState(mb.stateD)
	if err != nil {
		t.Fatal(err)
	}
	mb.st = st
}

func (mb *testMailbox) fetch(t testing.TB, c *mail.Codec, net Network, opt FetchOptions) *FetchReport {
	t.Helper()
	opt.Maildir = mb.maildir
	if opt.Now.IsZero() {
		opt.Now = testNow
	}
	rep, err := Fetch(context.Background(), net, c, mb.me, mb.st, opt)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	return rep
}

func idsOf(bs []mail.Block) []block.ID {
	ids := make([]block.ID, len(bs))
	for i, b := range bs {
		ids[i] = b.ID
	}
	return ids
}

// sentMail is one mail from alice to bob (difficulty 4 each) stored in a
// fresh network.
type sentMail struct {
	c          *mail.Codec
	net        *memNet
	alice, bob *identity.Identity
	msg        []byte
	b          *mail.Built
}

func sendOneMail(t testing.TB, subject, text string, att ...mail.Attachment) *sentMail {
	t.Helper()
	s := &sentMail{c: testCodec(t), net: newMemNet(testNow), alice: testIdentity(t, seedAlice, 4), bob: testIdentity(t, seedBob, 4)}
	s.msg = composeTo(t, s.alice, []*identity.Identity{s.bob}, subject, text, att...)
	s.b = buildAndSend(t, s.c, s.net, s.alice, s.msg, s.bob)
	t.Cleanup(s.b.Release)
	return s
}

// readMaildirFile reads a delivered file, checking it is in new/.
func readMaildirFile(t *testing.T, d Delivered) []byte {
	t.Helper()
	if filepath.Base(filepath.Dir(d.Path)) != "new" {
		t.Fatalf("delivered to %s, not into new/", d.Path)
	}
	b, err := os.ReadFile(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readParts reads a MIME mail: its text part and its attachments by name.
func readParts(t testing.TB, r *gomail.Reader) (text string, att map[string][]byte) {
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
		if h, ok := p.Header.(*gomail.AttachmentHeader); ok {
			name, _ := h.Filename()
			att[name] = body
		} else {
			text = string(body)
		}
	}
}
