package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gomail "github.com/emersion/go-message/mail"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/testseed"
	"github.com/flowmail/flowmail/naming"
	"github.com/flowmail/flowmail/record"
)

// oneDomain is DNS with one domain's record.
type oneDomain struct{ d *naming.Domain }

func (o oneDomain) LookupDomain(_ context.Context, domain string) (*naming.Domain, error) {
	if domain != o.d.Name {
		return nil, naming.ErrNoRecord
	}
	return o.d, nil
}

// statesOnly is a DHT that knows addresses' states and holds no records.
type statesOnly map[block.ID]record.KeyState

func (s statesOnly) Record(context.Context, block.ID) (*record.Record, error) {
	return nil, record.ErrNotFound
}

func (s statesOnly) KeyState(_ context.Context, a block.ID) (record.KeyState, error) {
	st, ok := s[a]
	if !ok {
		return st, record.ErrNotFound
	}
	return st, nil
}

// TestShowSenderName: a carried certificate that checks puts the name in
// From; one for another address, one under a key DNS does not list, and
// garbage leave From alone and say why; a Flowmail-Name field the sender
// wrote never survives; the body is kept byte for byte.
func TestShowSenderName(t *testing.T) {
	rnd := testseed.ChaCha8(t)
	now := time.Now()
	newID := func() *identity.Identity {
		id, _, err := identity.New(8, now, rnd)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	alice, mallory := newID(), newID()
	_, dk, _ := ed25519.GenerateKey(rnd)
	_, otherKey, _ := ed25519.GenerateKey(rnd)
	v := record.Version{Seq: 1, NotBefore: uint64(now.Add(-time.Hour).Unix()), NotAfter: uint64(now.Add(24 * time.Hour).Unix())}
	cert := func(key ed25519.PrivateKey, who *identity.Identity) []byte {
		r, err := record.SignName(record.NameCert{Name: "alice@example.test", Address: who.ID(), Version: v}, record.KeySigner(key), who)
		if err != nil {
			t.Fatal(err)
		}
		return r.Bytes()
	}
	dom := &naming.Domain{Name: "example.test", Record: naming.Record{Keys: []naming.Key{naming.Key(dk.Public().(ed25519.PublicKey))}}}
	r := &naming.Resolver{DNS: oneDomain{dom}, DHT: statesOnly{
		alice.ID():   record.InitialState(alice.Public()),
		mallory.ID(): record.InitialState(mallory.Public()),
	}}
	const body = "Hello Bob,\r\n\r\nFrom: not a header\r\n"
	aliceFrom := "From: <" + identity.FormatAddress(alice.ID()) + "@flowmail.invalid>\r\n"
	mail := func(t *testing.T, carried []byte, extra string) string {
		var b bytes.Buffer
		if carried != nil {
			if err := writeNameCertHeader(&b, carried); err != nil {
				t.Fatal(err)
			}
		}
		from := aliceFrom
		if strings.HasPrefix(extra, "From:") {
			from = ""
		}
		b.WriteString(extra + from + "Subject: hi\r\n\r\n" + body)
		dir := t.TempDir()
		for _, sub := range []string{"new", "tmp"} {
			if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		path := filepath.Join(dir, "new", "1.mail")
		if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	read := func(t *testing.T, path string) (gomail.Header, string) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		_, after, _ := strings.Cut(string(b), "\r\n\r\n")
		if after != body {
			t.Fatalf("body changed: %q", after)
		}
		mr, err := gomail.CreateReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		return mr.Header, string(b)
	}
	ctx := context.Background()
	forged := "Flowmail-Name: alice@example.test (certified, honest)\r\n"

	path := mail(t, cert(dk, alice), forged)
	name, err := showSenderName(ctx, r, path, alice.ID(), now)
	if err != nil || name != "alice@example.test" {
		t.Fatalf("a good certificate: %q, %v", name, err)
	}
	h, raw := read(t, path)
	from, _ := h.AddressList("From")
	if len(from) != 1 || from[0].Name != "alice@example.test" || strings.Count(raw, nameHeader+":") != 1 || !strings.HasPrefix(h.Get(nameHeader), "alice@example.test (certified by example.test") {
		t.Fatalf("From %v, %s %q", from, nameHeader, h.Get(nameHeader))
	}

	for what, c := range map[string]struct {
		carried []byte
		extra   string
		want    error
	}{
		"mallory's certificate on alice's mail": {cert(dk, mallory), "", errBadNameCert},
		"a key DNS does not list":               {cert(otherKey, alice), "", naming.ErrKeyNotListed},
		"no certificate, a forged name":         {nil, forged, nil},
		"two certificates":                      {cert(dk, alice), nameCertHeader + ": AAAA\r\n", errBadNameCert},
		"not base64":                            {nil, nameCertHeader + ": @@@@\r\n", errBadNameCert},
		"a display name that looks like a name": {nil, `From: "alice@example.test" <` + identity.FormatAddress(alice.ID()) + "@flowmail.invalid>\r\n", nil},
		"a certificate that fails, a lookalike": {cert(otherKey, alice), `From: "alice@example.test" <` + identity.FormatAddress(alice.ID()) + "@flowmail.invalid>\r\n", naming.ErrKeyNotListed},
	} {
		path := mail(t, c.carried, c.extra)
		name, err := showSenderName(ctx, r, path, alice.ID(), now)
		if name != "" || !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s: shown %q, err %v, want %v", what, name, err, c.want)
			continue
		}
		h, _ := read(t, path)
		from, _ := h.AddressList("From")
		if len(from) != 1 || from[0].Name != "" {
			t.Errorf("%s: From %v", what, from)
		}
		if got := h.Get(nameHeader); strings.Contains(got, "honest") || (c.extra == forged && !strings.HasPrefix(got, "none")) {
			t.Errorf("%s: %s %q", what, nameHeader, got)
		}
	}
}

// FuzzHeaderBlock: the header of a delivered mail (the sender's bytes)
// is read without panic, bounded, and, when accepted, is exactly the
// lines before the first blank line.
func FuzzHeaderBlock(f *testing.F) {
	var b bytes.Buffer
	writeNameCertHeader(&b, bytes.Repeat([]byte{7}, 300))
	f.Add(b.String() + "From: <a@flowmail.invalid>\r\n\r\nbody")
	f.Add("From: x\n folded\nSubject: y\n\nbody")
	f.Add(" starts folded\n\n")
	f.Add("no end")
	f.Fuzz(func(t *testing.T, in string) {
		fields, _, n, err := readHeaderBlock(bufio.NewReader(strings.NewReader(in)))
		if err != nil {
			return
		}
		if n > len(in) || n > maxHeaderBlock {
			t.Fatalf("took %d bytes of %d", n, len(in))
		}
		var joined strings.Builder
		for _, fl := range fields {
			for _, l := range fl.lines {
				joined.WriteString(l)
			}
			_ = fl.value()
		}
		head := in[:n]
		if !strings.HasPrefix(head, joined.String()) || strings.TrimRight(head[joined.Len():], "\r\n") != "" {
			t.Fatalf("fields %q do not make the header %q", joined.String(), head)
		}
	})
}

// withRecords is statesOnly with the certificates at their slots.
type withRecords struct {
	statesOnly
	slots map[block.ID]*record.Record
}

func (w withRecords) Record(_ context.Context, slot block.ID) (*record.Record, error) {
	if r, ok := w.slots[slot]; ok {
		return r, nil
	}
	return nil, record.ErrNotFound
}

// TestResolveNamePins: the first resolution pins the name in names.toml
// and says so; a re-binding to another address is refused with the
// warning and leaves the pin; after accepting, the new address is used.
func TestResolveNamePins(t *testing.T) {
	rnd := testseed.ChaCha8(t)
	now := time.Now()
	newID := func() *identity.Identity {
		id, _, err := identity.New(8, now, rnd)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	alice, other := newID(), newID()
	_, dk, _ := ed25519.GenerateKey(rnd)
	key := naming.Key(dk.Public().(ed25519.PublicKey))
	dht := withRecords{statesOnly{alice.ID(): record.InitialState(alice.Public()), other.ID(): record.InitialState(other.Public())}, map[block.ID]*record.Record{}}
	issue := func(who *identity.Identity, held *record.Record) *record.Record {
		v, err := naming.NextVersion(held, now, naming.DefaultValidity)
		if err != nil {
			t.Fatal(err)
		}
		r, err := record.SignName(record.NameCert{Name: "alice@example.test", Address: who.ID(), Version: v}, record.KeySigner(dk), who)
		if err != nil {
			t.Fatal(err)
		}
		dht.slots[r.Slot()] = r
		return r
	}
	r := &naming.Resolver{DNS: oneDomain{&naming.Domain{Name: "example.test", Record: naming.Record{Keys: []naming.Key{key}}}}, DHT: dht}
	home := t.TempDir()
	ctx := context.Background()
	var notes bytes.Buffer
	first := issue(alice, nil)
	b, err := resolveName(ctx, &notes, home, r, "Alice@Example.Test", now)
	if err != nil || b.Address() != alice.ID() || !strings.Contains(notes.String(), "pinned") {
		t.Fatalf("first resolution: %v, %q", err, notes.String())
	}
	issue(other, first)
	if _, err := resolveName(ctx, &notes, home, r, "alice@example.test", now); !errors.Is(err, naming.ErrRebound) {
		t.Fatalf("after a re-binding: %v", err)
	}
	book, err := loadNames(home)
	if err != nil {
		t.Fatal(err)
	}
	if got := book.Names["alice@example.test"].Address; got != identity.FormatAddress(alice.ID()) {
		t.Fatalf("the refused re-binding moved the pin to %s", got)
	}
	b, err = r.Resolve(ctx, "alice@example.test", now, nil)
	if err != nil {
		t.Fatal(err)
	}
	book.set(naming.Accept(b), now)
	if err := book.save(home); err != nil {
		t.Fatal(err)
	}
	if b, err := resolveName(ctx, &notes, home, r, "alice@example.test", now); err != nil || b.Address() != other.ID() {
		t.Fatalf("after accepting: %v", err)
	}
}

// TestWhoamiListsCheckedNames: whoami lists the names send --as checked
// for this address, not those checked for another one.
func TestWhoamiListsCheckedNames(t *testing.T) {
	home := t.TempDir()
	if _, _, err := runCLI(t, "--home", home, "init", "--no-passphrase", "--difficulty", "8"); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCLI(t, "--home", home, "whoami")
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimSpace(out)
	now := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	if err := checkedOwnName(home, "alice@example.test", addr, now); err != nil {
		t.Fatal(err)
	}
	if err := checkedOwnName(home, "old@example.test", identity.FormatAddress(block.ID{1}), now); err != nil {
		t.Fatal(err)
	}
	_, stderr, err := runCLI(t, "--home", home, "whoami")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, "name:       alice@example.test (certificate checked 2026-12-02T03:00:00Z)") || strings.Contains(stderr, "old@") {
		t.Fatalf("whoami: %s", stderr)
	}
}
