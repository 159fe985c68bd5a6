package grant

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/internal/vectors"
	"github.com/flowmail/flowmail/mail"
)

const vectorFile = "grant.json"

var vectorIssued = time.Unix(1767225600, 0)

func errName(err error) string {
	return vectors.RuleName(err, ErrSize, ErrVersion, ErrZeroID, ErrIssued, ErrSelf, ErrFile)
}

// counter is a reader of 0, 1, 2, ...: deterministic grants.
type counter struct{ n byte }

func (c *counter) Read(p []byte) (int, error) {
	for i := range p {
		c.n++
		p[i] = c.n
	}
	return len(p), nil
}

func vectorGrant() *Grant {
	g, err := New(block.Sum([]byte("bob")), block.Sum([]byte("alice")), vectorIssued, &counter{})
	if err != nil {
		panic(err)
	}
	return g
}

func genVectors() vectors.File {
	good := vectorGrant().Encode()
	edit := func(f func(b []byte)) string {
		b := bytes.Clone(good)
		f(b)
		return hex.EncodeToString(b)
	}
	v := func(name, note, input, errName string) vectors.Vector {
		return vectors.Vector{Name: name, Function: "Parse", Input: input, Error: errName, Note: note}
	}
	return vectors.File{
		Description: "Grants (docs/PROTOCOL.md 17.1): granter SHA-512/256(SHA-512/256(\"bob\")), grantee the same of \"alice\", grant_id and grant_key the bytes 01 02 03 ..., issued 1767225600.",
		Vectors: []vectors.Vector{
			v("grant_ok", "17.1", hex.EncodeToString(good), ""),
			v("grant_short", "17.1: exactly GrantSize bytes", hex.EncodeToString(good[:Size-1]), "wrong size"),
			v("grant_long", "17.1: exactly GrantSize bytes", hex.EncodeToString(append(bytes.Clone(good), 0)), "wrong size"),
			v("grant_version_2", "17.1: version 1", edit(func(b []byte) { b[0] = 2 }), "unsupported version"),
			v("grant_zero_id", "17.1: grant_id not all zero", edit(func(b []byte) { clear(b[65:81]) }), "zero grant_id"),
			v("grant_zero_issued", "17.1: issued not zero", edit(func(b []byte) { clear(b[113:]) }), "zero issued time"),
			v("grant_issued_overflows", "17.1: issued at most 2^63 - 1", edit(func(b []byte) { binary.BigEndian.PutUint64(b[113:], 1<<63) }), "zero issued time"),
			v("grant_to_self", "17.1: granter differs from grantee", edit(func(b []byte) { copy(b[33:65], b[1:33]) }), "granter and grantee are the same"),
		},
	}
}

func checkVector(v vectors.Vector) (map[string]string, string) {
	b, err := hex.DecodeString(v.Input)
	if err != nil {
		return nil, "bad hex"
	}
	g, err := Parse(b)
	if err != nil {
		return nil, errName(err)
	}
	if !bytes.Equal(g.Encode(), b) {
		return nil, "re-encoding differs"
	}
	return map[string]string{
		"granter":   hex.EncodeToString(g.Granter[:]),
		"grantee":   hex.EncodeToString(g.Grantee[:]),
		"grant_id":  hex.EncodeToString(g.ID[:]),
		"grant_key": hex.EncodeToString(g.Key[:]),
		"issued":    strconv.FormatInt(g.Issued.Unix(), 10),
	}, ""
}

func TestVectors(t *testing.T) { vectors.Check(t, vectorFile, genVectors, checkVector) }

func FuzzParse(f *testing.F) {
	for _, v := range genVectors().Vectors {
		b, _ := hex.DecodeString(v.Input)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := Parse(b)
		if err != nil {
			return
		}
		if !bytes.Equal(g.Encode(), b) {
			t.Fatal("a parsed grant re-encodes to other bytes")
		}
	})
}

func FuzzParseTable(f *testing.F) {
	tb := NewTable()
	g := vectorGrant()
	tb.issued[g.ID] = &Issued{Grant: g}
	h := vectorGrant()
	h.Granter, h.Grantee = g.Grantee, g.Granter
	tb.Hold(h)
	f.Add(tb.Encode())
	tb.Withdraw(g.Grantee, vectorIssued)
	f.Add(tb.Encode())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		tb, err := ParseTable(b)
		if err != nil {
			if !errors.Is(err, ErrFile) {
				t.Fatalf("error %v is not ErrFile", err)
			}
			return
		}
		again, err := ParseTable(tb.Encode())
		if err != nil {
			t.Fatalf("a parsed table re-encodes to bytes that do not parse: %v", err)
		}
		if !bytes.Equal(again.Encode(), tb.Encode()) {
			t.Fatal("encoding is not stable")
		}
	})
}

func TestTableIssuesOneGrantPerGrantee(t *testing.T) {
	tb := NewTable()
	bob, alice := block.Sum([]byte("bob")), block.Sum([]byte("alice"))
	g1, err := tb.Issue(bob, alice, vectorIssued, nil)
	if err != nil {
		t.Fatal(err)
	}
	g2, err := tb.Issue(bob, alice, vectorIssued.Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	if g1 != g2 {
		t.Fatal("allowing twice issued a second grant")
	}
	if n := tb.Withdraw(alice, vectorIssued); n != 1 {
		t.Fatalf("withdrew %d grants, want 1", n)
	}
	g3, err := tb.Issue(bob, alice, vectorIssued.Add(2*time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	if g3.ID == g1.ID {
		t.Fatal("a grant issued after withdrawal reuses the withdrawn ID")
	}
	l := tb.List()
	if len(l) != 2 || l[0].Grant != g3 || l[1].Withdrawn.IsZero() {
		t.Fatalf("List: %+v, want the standing grant first, then the withdrawn one", l)
	}
}

func TestTableSurvivesItsFile(t *testing.T) {
	tb := NewTable()
	bob, alice, list := block.Sum([]byte("bob")), block.Sum([]byte("alice")), block.Sum([]byte("list"))
	g, _ := tb.Issue(bob, alice, vectorIssued, nil)
	if _, err := tb.Issue(bob, list, vectorIssued, nil); err != nil {
		t.Fatal(err)
	}
	tb.Withdraw(list, vectorIssued.Add(time.Hour))
	held, _ := New(alice, bob, vectorIssued, nil)
	tb.Hold(held)
	path := t.TempDir() + "/grants"
	if err := tb.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.Encode(), tb.Encode()) {
		t.Fatal("the table read back differs")
	}
	if h := back.HeldFrom(alice); h == nil || h.Key != held.Key {
		t.Fatal("the held grant is lost")
	}
	if x := back.issued[g.ID]; x == nil || !x.Withdrawn.IsZero() {
		t.Fatal("the standing grant is lost or withdrawn")
	}
	back.Prune(vectorIssued.Add(time.Hour + 31*24*time.Hour + time.Minute + 24*time.Hour))
	if len(back.List()) != 1 {
		t.Fatalf("Prune kept %d issued grants, want the standing one", len(back.List()))
	}
}

func TestGrantTravelsInAMail(t *testing.T) {
	bob, alice := block.Sum([]byte("bob")), block.Sum([]byte("alice"))
	g, _ := New(bob, alice, vectorIssued, nil)
	msg, err := mail.Compose(&mail.Message{
		From: mail.Mailbox{Address: bob}, To: []mail.Mailbox{{Address: alice}}, Subject: "you may write to me", Text: "hi",
		Date: vectorIssued, Attachments: []mail.Attachment{g.Attachment()},
	}, &counter{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := FromMessage(bytes.NewReader(msg), bob, alice)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Key != g.Key || got[0].ID != g.ID {
		t.Fatalf("got %+v, want the grant sent", got)
	}
	// Signed by someone else, or for someone else: refused.
	if _, err := FromMessage(bytes.NewReader(msg), alice, alice); !errors.Is(err, ErrNotOurs) {
		t.Fatalf("a grant in a mail signed by another: %v, want ErrNotOurs", err)
	}
	plain, _ := mail.Compose(&mail.Message{From: mail.Mailbox{Address: bob}, To: []mail.Mailbox{{Address: alice}}, Subject: "x", Text: "hi", Date: vectorIssued}, &counter{})
	if _, err := FromMessage(bytes.NewReader(plain), bob, alice); !errors.Is(err, ErrNoGrants) {
		t.Fatalf("a mail without a grant: %v, want ErrNoGrants", err)
	}
}
