package naming

import (
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/internal/vectors"
)

// FuzzParseRecord: no text makes the parser panic; a text it accepts
// says the same in its canonical form (the parser is not malleable beyond
// spaces and ignored tags), and what it accepts fits a TXT string.
func FuzzParseRecord(f *testing.F) {
	srv := block.ID(vectors.Pattern(32, 0x5e))
	for _, r := range []Record{
		{Keys: []Key{keyA}},
		{Keys: []Key{keyA, keyB}, Server: srv, At: "mail.example.com:4433"},
		{Keys: []Key{keyB}, At: "[2001:db8::1]:443"},
	} {
		f.Add(r.Text())
	}
	f.Add("v=fm1;k=" + FormatKey(keyA) + ";note=x;")
	f.Add("v=fm2; k=" + FormatKey(keyA))
	f.Add("v=spf1 -all")
	f.Add("")
	for _, v := range txtVectors().Vectors {
		f.Add(v.Input)
	}
	f.Fuzz(func(t *testing.T, text string) {
		r, err := ParseRecord(text)
		if err != nil {
			if r != nil {
				t.Fatal("a record and an error")
			}
			return
		}
		if len(text) > MaxTXTSize || len(r.Keys) == 0 {
			t.Fatalf("accepted %d bytes with %d keys", len(text), len(r.Keys))
		}
		canon := r.Text()
		if len(canon) > MaxTXTSize {
			return // spaces the input left out; the canonical form is only for writing
		}
		again, err := ParseRecord(canon)
		if err != nil {
			t.Fatalf("canonical form %q of %q: %v", canon, text, err)
		}
		if again.Text() != canon {
			t.Fatalf("%q -> %q -> %q", text, canon, again.Text())
		}
		// SelectRecord agrees with ParseRecord on one record.
		sel, err := SelectRecord([]string{text})
		if err != nil || sel.Text() != canon {
			t.Fatalf("SelectRecord(%q): %v", text, err)
		}
		if strings.ContainsAny(canon, "\"\\") {
			t.Fatalf("canonical form %q needs escaping in a zone file", canon)
		}
	})
}

// FuzzReadAnswer: a DNS server's answer (any bytes miekg/dns unpacks) to
// the question for _flowmail.example.test is read without panic; an
// answer accepted holds a text, and a record selected from it is within
// MaxTXTSize.
func FuzzReadAnswer(f *testing.F) {
	q := new(dns.Msg)
	q.SetQuestion(TXTPrefix+"example.test.", dns.TypeTXT)
	add := func(texts ...string) {
		r := new(dns.Msg)
		r.SetReply(q)
		for _, t := range texts {
			r.Answer = append(r.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{t}})
		}
		b, err := r.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	add(recordText(keyA))
	add(recordText(keyA), "v=spf1 -all")
	add(recordText(keyA), recordText(keyB))
	add()
	f.Fuzz(func(t *testing.T, b []byte) {
		r := new(dns.Msg)
		if r.Unpack(b) != nil {
			return
		}
		a, err := readAnswer(q, r, "fuzz")
		if err != nil {
			return
		}
		if len(a.Texts) == 0 {
			t.Fatal("accepted an answer without a text")
		}
		if rec, err := SelectRecord(a.Texts); err == nil && len(rec.Text()) > MaxTXTSize {
			t.Fatalf("selected a record of %d bytes", len(rec.Text()))
		}
	})
}

// FuzzParseCarried: no header value makes the parser panic; a value it
// accepts is a verified name certificate whose own field parses back to
// the same bytes.
func FuzzParseCarried(f *testing.F) {
	f.Add("")
	f.Add("AAAA")
	f.Add(" " + strings.Repeat("QUFB", 200))
	f.Fuzz(func(t *testing.T, v string) {
		rec, err := ParseCarried(v)
		if err != nil {
			return
		}
		again, err := ParseCarried(strings.TrimPrefix(CarriedField(rec.Bytes()), CertHeader+":"))
		if err != nil || string(again.Bytes()) != string(rec.Bytes()) {
			t.Fatalf("the canonical field does not parse back: %v", err)
		}
	})
}
