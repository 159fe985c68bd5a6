package mail

import (
	"io"
	"testing"
	"time"

	gomail "github.com/emersion/go-message/mail"

	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/mailtest"
)

// Shared test fixtures under the names the tests use.
var (
	testNow      = mailtest.Now
	testCreated  = mailtest.Created
	testIdentity = mailtest.Identity
	detRand      = mailtest.Rand
	randomBytes  = mailtest.RandomBytes
	publicKeys   = mailtest.PublicKeys
)

const (
	seedAlice   = mailtest.Alice
	seedBob     = mailtest.Bob
	seedCarol   = mailtest.Carol
	seedMallory = mailtest.Mallory
)

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

// openBuilt opens the index block of b for recipient i with the shards
// b holds, as a recipient that fetched all of them would.
func openBuilt(c *Codec, me *identity.Identity, b *Built, i int, now time.Time) (*Mail, *Manifest, error) {
	x := b.Index[i]
	man, err := OpenIndex(me, x.ID, x.Bytes)
	if err != nil {
		return nil, nil, err
	}
	payloads := make([][]byte, len(man.ShardIDs))
	for j := range payloads {
		for _, d := range b.Data {
			if d.ID == man.ShardIDs[j] {
				if p, err := ShardPayload(man, j, d.Bytes); err == nil {
					payloads[j] = p
				}
			}
		}
	}
	m, err := c.OpenBody(me, man, payloads, now)
	return m, man, err
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
