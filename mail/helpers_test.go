package mail

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	gomail "github.com/emersion/go-message/mail"

	"github.com/flowmail/flowmail/block"
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

// build builds msg from sender to recipients with randomness seed,
// keeping every data block in the Built.
func build(t testing.TB, c *Codec, sender *identity.Identity, msg []byte, seed uint64, rcpts ...*identity.Identity) *Built {
	t.Helper()
	b, err := c.Build(context.Background(), BuildInput{Sender: sender, Recipients: publicKeys(rcpts...), Message: bytes.NewReader(msg), Size: int64(len(msg)), Now: testNow, Rand: detRand(seed)}, BuildOptions{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Release)
	return b
}

// blockShards serves the shards of man from blocks, checked as a
// recipient checks what it fetches; lost names shard positions to leave
// out.
func blockShards(man *Manifest, blocks map[block.ID][]byte, lost map[int]bool) Shards {
	return func(_ context.Context, g int) ([][]byte, error) {
		first := man.Layout.FirstShard(g)
		got := make([][]byte, man.Layout.Group(g).Shards())
		for j := range got {
			if b, ok := blocks[man.ShardIDs[first+j]]; ok && !lost[first+j] {
				got[j] = b
			}
		}
		return GroupPayloads(man, g, got), nil
	}
}

func blocksOf(bs []Block) map[block.ID][]byte {
	m := make(map[block.ID][]byte, len(bs))
	for _, b := range bs {
		m[b.ID] = b.Bytes
	}
	return m
}

// openBuilt opens the index block of b for recipient i with the shards
// b holds, as a recipient that fetched all of them would.
func openBuilt(c *Codec, me *identity.Identity, b *Built, i int, now time.Time) (*Opened, []byte, *Manifest, error) {
	x := b.Index[i]
	man, err := OpenIndex(me, x.ID, x.Bytes)
	if err != nil {
		return nil, nil, nil, err
	}
	o, msg, err := openMem(c, me, man, blockShards(man, blocksOf(b.Data), nil), now)
	return o, msg, man, err
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

// openMem is OpenBody into memory.
func openMem(c *Codec, me *identity.Identity, man *Manifest, shards Shards, now time.Time) (*Opened, []byte, error) {
	var buf bytes.Buffer
	o, err := c.OpenBody(context.Background(), me, man, shards, &buf, now)
	if err != nil {
		return nil, nil, err
	}
	return o, buf.Bytes(), nil
}
