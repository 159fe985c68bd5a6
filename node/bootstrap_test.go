package node

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestBootstrapListOverTheLimitIsRefusedNotCut(t *testing.T) {
	// Comments pad the file past the limit; cutting it would leave the
	// last line as "127.0.0.1:44", a wrong port.
	var b bytes.Buffer
	for b.Len() < maxBootstrapFile-10 {
		b.WriteString("# padding padding padding padding padding padding\n")
	}
	b.WriteString("127.0.0.1:4410\n")
	if _, err := parseBootstrapLines(&b, "big.txt"); !errors.Is(err, ErrBootstrapFile) {
		t.Fatalf("an oversized list: %v", err)
	}
	got, err := parseBootstrapLines(strings.NewReader("# a peer\n127.0.0.1:4410\n"), "small.txt")
	if err != nil || len(got) != 1 || got[0].Addr.Port() != 4410 {
		t.Fatalf("a small list: %v, %v", got, err)
	}
}

// FuzzBootstrapLines: a bootstrap list (a file, a flag, an environment
// variable) never panics the parser, and what it accepts formats back to
// lines that parse to the same contacts.
func FuzzBootstrapLines(f *testing.F) {
	for _, s := range []string{
		"127.0.0.1:4410\n",
		"# comment\n\n[::1]:9\n",
		"0000000000000000000000000000000000000000000000000000000000000001@10.0.0.1:1\n",
		"host.example:4410\n",
		"1.2.3.4:0\n",
		"@1.2.3.4:5\n",
		"[fe80::1%eth0]:7\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cs, err := parseBootstrapLines(bytes.NewReader(data), "fuzz")
		if err != nil {
			if !errors.Is(err, ErrBootstrapFile) && !errors.Is(err, ErrBadContact) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		var lines strings.Builder
		for _, c := range cs {
			lines.WriteString(FormatContact(c) + "\n")
		}
		again, err := parseBootstrapLines(strings.NewReader(lines.String()), "again")
		if err != nil {
			t.Fatalf("formatted contacts do not parse: %v\n%s", err, lines.String())
		}
		if len(again) != len(cs) {
			t.Fatalf("%d contacts, %d after a round trip", len(cs), len(again))
		}
		for i := range cs {
			if again[i] != cs[i] {
				t.Fatalf("contact %d: %v, %v after a round trip", i, cs[i], again[i])
			}
		}
	})
}
