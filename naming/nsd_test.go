package naming

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowmail/flowmail/internal/nsdtest"
	"github.com/flowmail/flowmail/record"
)

// TestAgainstNSD resolves names through a real authoritative server: the
// record `domain init` prints, loaded from a zone file; a record split in
// two strings; one too big for UDP (truncated, asked again over TCP); and
// each refusal.
func TestAgainstNSD(t *testing.T) {
	src := testRand(t)
	w := newWorld(t, src)
	dk := newDomainKey(t, src)
	rec := Record{Keys: []Key{pub(dk)}, At: "mail.example.test:4433"}
	text := rec.Text()
	filler := ""
	for i := range 8 { // 8 records of 200 bytes: more than EDNS's 1232 over UDP
		filler += fmt.Sprintf("_flowmail.big.example.test. IN TXT \"filler-%d %s\"\n", i, strings.Repeat("x", 190))
	}
	zone := rec.ZoneLine("example.test") + "\n" +
		rec.ZoneLine("big.example.test") + "\n" + filler +
		"_flowmail.split.example.test. IN TXT \"" + text[:30] + "\" \"" + text[30:] + "\"\n" +
		"_flowmail.two.example.test. IN TXT \"" + text + "\"\n" +
		"_flowmail.two.example.test. IN TXT \"v=fm1; k=" + FormatKey(keyA) + "\"\n" +
		"_flowmail.bad.example.test. IN TXT \"v=fm1; k=" + FormatKey(pub(dk))[:40] + "\"\n" +
		"_flowmail.future.example.test. IN TXT \"v=fm2; k=x\"\n" +
		"_flowmail.nodata.example.test. IN A 127.0.0.1\n"
	ctx := hangGuard(t)
	s := nsdtest.Start(t, ctx, "example.test", zone)
	c := &DNS{Servers: []string{s.Addr}, Timeout: time.Minute, AttemptTimeout: 10 * time.Second}
	for _, name := range []string{"example.test", "big.example.test", "split.example.test"} {
		d, err := c.LookupDomain(ctx, name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if d.Text() != text || d.Validated {
			t.Errorf("%s: %q, validated %v", name, d.Text(), d.Validated)
		}
	}
	for name, want := range map[string]error{
		"missing.example.test": ErrNoRecord,
		"nodata.example.test":  ErrNoRecord,
		"two.example.test":     ErrConflict,
		"bad.example.test":     ErrMalformed,
		"future.example.test":  ErrVersion,
	} {
		if _, err := c.LookupDomain(ctx, name); !errors.Is(err, want) {
			t.Errorf("%s: got %v, want %v", name, err, want)
		}
	}
	// The whole resolution, DNS from nsd.
	w.dht.put(certify(t, "alice@example.test", dk, w.alice, record.Version{}))
	res := &Resolver{DNS: c, DHT: w.dht}
	b, err := res.Resolve(ctx, "Alice@Example.Test", t0.Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.Address() != w.alice.id.ID() || b.Domain.At != "mail.example.test:4433" {
		t.Fatalf("resolved to %+v", b)
	}
}
