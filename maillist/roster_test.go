package maillist

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/mailtest"
)

func TestRosterRoundTripsAndSavesPrivately(t *testing.T) {
	a, b := mailtest.Identity(t, mailtest.Alice, 4).ID(), mailtest.Identity(t, mailtest.Bob, 4).ID()
	r := &Roster{Name: "team.dev"}
	for _, id := range []block.ID{a, b} {
		if ok, err := r.Add(id); !ok || err != nil {
			t.Fatalf("add: %v %v", ok, err)
		}
	}
	if ok, _ := r.Add(a); ok {
		t.Fatal("a member was added twice")
	}
	path := filepath.Join(t.TempDir(), "list")
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("roster file mode %v, %v; want 0600", fi.Mode(), err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != r.Name || len(got.Members) != 2 || got.Members[0] != a || got.Members[1] != b {
		t.Fatalf("loaded %+v, saved %+v", got, r)
	}
	if !got.Remove(a) || got.Remove(a) || got.Has(a) || !got.Has(b) {
		t.Fatal("remove")
	}
	if addressLen != len(identity.FormatAddress(a)) {
		t.Fatalf("addressLen %d, addresses are %d long", addressLen, len(identity.FormatAddress(a)))
	}
}

func TestParseRosterRejects(t *testing.T) {
	a := identity.FormatAddress(mailtest.Identity(t, mailtest.Alice, 4).ID())
	cases := map[string]string{
		"empty":            "",
		"no final newline": "flowmail-list 1\nname x",
		"wrong magic":      "flowmail-list 2\nname x\n",
		"no name":          "flowmail-list 1\n",
		"bad name":         "flowmail-list 1\nname Big Name\n",
		"dot name":         "flowmail-list 1\nname .x\n",
		"unknown line":     "flowmail-list 1\nname x\nowner " + a + "\n",
		"bad address":      "flowmail-list 1\nname x\nmember fm1nope\n",
		"upper case":       "flowmail-list 1\nname x\nmember " + strings.ToUpper(a) + "\n",
		"twice":            "flowmail-list 1\nname x\nmember " + a + "\nmember " + a + "\n",
		"too big":          "flowmail-list 1\nname x\n" + strings.Repeat("#", maxRosterSize),
	}
	for name, in := range cases {
		if _, err := ParseRoster([]byte(in)); !errors.Is(err, ErrRoster) {
			t.Errorf("%s: %v, want ErrRoster", name, err)
		}
	}
}

func TestRosterHasAMaximum(t *testing.T) {
	r := &Roster{Name: "big"}
	for i := range MaxMembers {
		var id block.ID
		id[0], id[1] = byte(i), byte(i>>8)
		r.Members = append(r.Members, id) // Add would check each against all: slow under -race
	}
	if _, err := r.Add(block.ID{0xff, 0xff, 0xff}); !errors.Is(err, ErrTooMany) {
		t.Fatalf("member %d: %v, want ErrTooMany", MaxMembers+1, err)
	}
	if len(r.Encode()) > maxRosterSize {
		t.Fatalf("a full roster is %d bytes, the parser takes %d", len(r.Encode()), maxRosterSize)
	}
	if _, err := ParseRoster(r.Encode()); err != nil {
		t.Fatal(err)
	}
	over := append(r.Encode(), r.Encode()[len(r.Encode())-len("member ")-addressLen-1:]...)
	if _, err := ParseRoster(over); !errors.Is(err, ErrRoster) {
		t.Fatalf("%d members parsed: %v", MaxMembers+1, err)
	}
}

func FuzzParseRoster(f *testing.F) {
	a := identity.FormatAddress(mailtest.Identity(f, mailtest.Alice, 4).ID())
	f.Add([]byte("flowmail-list 1\nname x\n"))
	f.Add([]byte("flowmail-list 1\nname friends\nmember " + a + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRoster(b)
		if err != nil {
			return
		}
		if !bytes.Equal(r.Encode(), b) {
			t.Fatalf("parsed %q, encodes as %q", b, r.Encode())
		}
	})
}
