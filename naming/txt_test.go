package naming

import (
	"errors"
	"strings"
	"testing"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/vectors"
)

var (
	keyA = Key(vectors.Pattern(32, 0xa0))
	keyB = Key(vectors.Pattern(32, 0xb0))
)

func TestRecordTextRoundTrips(t *testing.T) {
	srv := block.ID(vectors.Pattern(32, 0x5e))
	for _, r := range []Record{
		{Keys: []Key{keyA}},
		{Keys: []Key{keyA, keyB}, Server: srv, At: "mail.example.com:4433"},
		{Keys: []Key{keyB}, At: "[2001:db8::1]:443"},
		{Keys: []Key{keyB}, At: "192.0.2.7:1"},
	} {
		text := r.Text()
		if err := r.Check(); err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		got, err := ParseRecord(text)
		if err != nil {
			t.Fatal(err)
		}
		if got.Text() != text || len(got.Keys) != len(r.Keys) || got.Server != r.Server || got.At != r.At {
			t.Fatalf("%q parsed to %+v", text, got)
		}
	}
	// The longest sensible record, two keys, a server and a host, fits.
	long := Record{Keys: []Key{keyA, keyB}, Server: srv, At: strings.Repeat("a", 63) + ".example.com:65535"}
	if n := len(long.Text()); n > MaxTXTSize {
		t.Fatalf("two keys, srv and a long at take %d bytes", n)
	}
}

func TestZoneLine(t *testing.T) {
	r := Record{Keys: []Key{keyA}}
	got := r.ZoneLine("example.com")
	want := `_flowmail.example.com. IN TXT "v=fm1; k=oKeutbzDytHY3-bt9PsCCRAXHiUsMzpBSE9WXWRrcnk"` // base64url of Pattern(32, 0xa0), by Python
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestParseRecordRefuses(t *testing.T) {
	a, b := FormatKey(keyA), FormatKey(keyB)
	srv := identity.FormatAddress(block.ID(vectors.Pattern(32, 0x5e)))
	small := "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" // the identity point
	for name, tc := range map[string]struct {
		text string
		want error
	}{
		"no key":                {"v=fm1", ErrMalformed},
		"no key, srv only":      {"v=fm1; srv=" + srv, ErrMalformed},
		"key twice":             {"v=fm1; k=" + a + "; k=" + a, ErrMalformed},
		"short key":             {"v=fm1; k=" + a[:42], ErrMalformed},
		"padded key":            {"v=fm1; k=" + a + "=", ErrMalformed},
		"standard base64":       {"v=fm1; k=" + strings.ReplaceAll(strings.ReplaceAll(a, "-", "+"), "_", "/") + "+", ErrMalformed},
		"non-canonical key":     {"v=fm1; k=" + a[:42] + "9", ErrMalformed},
		"small-order key":       {"v=fm1; k=" + small, ErrMalformed},
		"empty tag":             {"v=fm1;; k=" + a, ErrMalformed},
		"upper-case tag":        {"v=fm1; K=" + a, ErrMalformed},
		"no equals":             {"v=fm1; k=" + a + "; srv", ErrMalformed},
		"empty value":           {"v=fm1; k=" + a + "; x=", ErrMalformed},
		"space in value":        {"v=fm1; k=" + a + "; x=a b", ErrMalformed},
		"two srv":               {"v=fm1; k=" + a + "; srv=" + srv + "; srv=" + srv, ErrMalformed},
		"upper-case srv":        {"v=fm1; k=" + a + "; srv=" + strings.ToUpper(srv), ErrMalformed},
		"bad srv":               {"v=fm1; k=" + a + "; srv=fm1qqq", ErrMalformed},
		"two at":                {"v=fm1; k=" + a + "; at=a.example:1; at=b.example:1", ErrMalformed},
		"at without port":       {"v=fm1; k=" + a + "; at=a.example", ErrMalformed},
		"at port 0":             {"v=fm1; k=" + a + "; at=a.example:0", ErrMalformed},
		"at port 65536":         {"v=fm1; k=" + a + "; at=a.example:65536", ErrMalformed},
		"at port leading zero":  {"v=fm1; k=" + a + "; at=a.example:053", ErrMalformed},
		"at upper case":         {"v=fm1; k=" + a + "; at=A.example:53", ErrMalformed},
		"at bare IPv6":          {"v=fm1; k=" + a + "; at=2001:db8::1:53", ErrMalformed},
		"at bracketed IPv4":     {"v=fm1; k=" + a + "; at=[192.0.2.1]:53", ErrMalformed},
		"at IPv6 not canonical": {"v=fm1; k=" + a + "; at=[2001:DB8::1]:53", ErrMalformed},
		"at label hyphen":       {"v=fm1; k=" + a + "; at=-a.example:53", ErrMalformed},
		"tab":                   {"v=fm1;\tk=" + a, ErrMalformed},
		"quote":                 {`v=fm1; k=` + a + `; x="y"`, ErrMalformed},
		"backslash":             {`v=fm1; k=` + a + `; x=\059`, ErrMalformed},
		"non-ASCII":             {"v=fm1; k=" + a + "; x=é", ErrMalformed},
		"too long":              {"v=fm1; k=" + a + "; k=" + b + "; x=" + strings.Repeat("y", 255), ErrMalformed},
		"version not first":     {"k=" + a + "; v=fm1", ErrVersion},
		"version 2":             {"v=fm2; k=" + a, ErrVersion},
		"version with a suffix": {"v=fm1x; k=" + a, ErrVersion},
	} {
		_, err := ParseRecord(tc.text)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %q: got %v, want %v", name, tc.text, err, tc.want)
		}
	}
}

func TestParseRecordAccepts(t *testing.T) {
	a := FormatKey(keyA)
	for name, text := range map[string]string{
		"canonical":          "v=fm1; k=" + a,
		"no spaces":          "v=fm1;k=" + a,
		"spaces around":      "v=fm1 ;  k=" + a + " ",
		"final separator":    "v=fm1; k=" + a + ";",
		"unknown tag":        "v=fm1; k=" + a + "; note=hello",
		"unknown tag before": "v=fm1; x1=y; k=" + a,
		"at IPv4":            "v=fm1; k=" + a + "; at=192.0.2.1:4433",
	} {
		r, err := ParseRecord(text)
		if err != nil {
			t.Errorf("%s: %q: %v", name, text, err)
			continue
		}
		if len(r.Keys) != 1 || r.Keys[0] != keyA {
			t.Errorf("%s: keys %v", name, r.Keys)
		}
	}
}

func TestSelectRecord(t *testing.T) {
	one, two := "v=fm1; k="+FormatKey(keyA), "v=fm1; k="+FormatKey(keyB)
	for name, tc := range map[string]struct {
		texts []string
		want  error
		key   Key
	}{
		"one":                    {[]string{one}, nil, keyA},
		"others ignored":         {[]string{"v=spf1 -all", one, "google-site-verification=x"}, nil, keyA},
		"newer version ignored":  {[]string{"v=fm2; q=1", one}, nil, keyA},
		"two":                    {[]string{one, two}, ErrConflict, Key{}},
		"two, one malformed":     {[]string{one, "v=fm1; k=zz"}, ErrConflict, Key{}},
		"none":                   {nil, ErrNoRecord, Key{}},
		"none of ours":           {[]string{"v=spf1 -all"}, ErrNoRecord, Key{}},
		"upper-case is not ours": {[]string{"V=FM1; k=" + FormatKey(keyA)}, ErrNoRecord, Key{}},
		"only a newer version":   {[]string{"v=fm2; q=1"}, ErrVersion, Key{}},
		"malformed":              {[]string{"v=fm1; k=zz"}, ErrMalformed, Key{}},
	} {
		r, err := SelectRecord(tc.texts)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", name, err, tc.want)
			continue
		}
		if err == nil && r.Keys[0] != tc.key {
			t.Errorf("%s: picked the record of key %s", name, FormatKey(r.Keys[0]))
		}
	}
}

func TestParseServer(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1":         "127.0.0.1:53",
		"127.0.0.1:5353":    "127.0.0.1:5353",
		"::1":               "[::1]:53",
		"[::1]:5353":        "[::1]:5353",
		"localhost:53":      "",
		"127.0.0.1:0":       "",
		"127.0.0.1:99999":   "",
		"":                  "",
		"fe80::1%eth0":      "",
		"[fe80::1%eth0]:53": "",
	} {
		got, err := ParseServer(in)
		if want == "" {
			if !errors.Is(err, ErrNoResolver) {
				t.Errorf("%q: got %q, %v; want an error", in, got, err)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("%q: got %q, %v; want %q", in, got, err, want)
		}
	}
}
