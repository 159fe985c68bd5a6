package rendezvous

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseContactsRejectsMalformedFiles(t *testing.T) {
	tests := []struct {
		name, file, want string
	}{
		{"no final newline", "192.0.2.1:6881", "newline"},
		{"blank line", "192.0.2.1:6881\n\n", "line 2"},
		{"not an address", "router:6881\n", "line 1"},
		{"IPv6", "[2001:db8::1]:6881\n", "not an IPv4"},
		{"IPv4-mapped IPv6", "[::ffff:192.0.2.1]:6881\n", "not an IPv4"},
		{"port zero", "192.0.2.1:0\n", "port 0"},
		{"leading zero in port", "192.0.2.1:06881\n", "canonical"},
		{"duplicate", "192.0.2.1:6881\n192.0.2.1:6881\n", "repeated"},
		{"too many lines", strings.Repeat("192.0.2.1:1\n", maxContacts+1), "lines"},
		{"too large", strings.Repeat("x", maxContactsFileSize+1), "bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseContacts([]byte(tt.file))
			if !errors.Is(err, ErrContactsFile) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("parseContacts: %v; want ErrContactsFile mentioning %q", err, tt.want)
			}
		})
	}
}

func TestContactsRoundTrip(t *testing.T) {
	var list []netip.AddrPort
	for i := range maxContacts {
		list = append(list, netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, byte(i)}), 65535-uint16(i)))
	}
	dir := t.TempDir()
	if err := saveContacts(dir, list); err != nil {
		t.Fatal(err)
	}
	got, err := loadContacts(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(list) {
		t.Fatalf("loaded %v, saved %v", got, list)
	}
	if fi, err := os.Stat(filepath.Join(dir, contactsFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("contacts file mode %v, %v; want 0600", fi.Mode(), err)
	}
	if files := filesUnder(t, dir); len(files) != 1 {
		t.Fatalf("saving left %v behind", files)
	}
}

func TestMissingContactsFileIsEmpty(t *testing.T) {
	got, err := loadContacts(t.TempDir())
	if err != nil || got != nil {
		t.Fatalf("loadContacts of an empty dir = %v, %v", got, err)
	}
}

// TestStartIgnoresDamagedContacts: a damaged cache must not stop the node;
// Close replaces it with a good one.
func TestStartIgnoresDamagedContacts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, contactsFile)
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := Start(t.Context(), Config{Network: "flowmail", Port: 4433, ListenAddr: "127.0.0.1", StateDir: dir, Routers: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatalf("Start with a damaged contacts file: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := loadContacts(dir); err != nil {
		t.Fatalf("after Close the contacts file is still bad: %v", err)
	}
}

func FuzzParseContacts(f *testing.F) {
	for _, s := range []string{"", "192.0.2.1:6881\n", "192.0.2.1:6881\n198.51.100.7:1\n", "192.0.2.1:06881\n", "[::1]:1\n", "x\n", "192.0.2.1:6881"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		list, err := parseContacts(b)
		if err != nil {
			return
		}
		if got := formatContacts(list); string(got) != string(b) {
			t.Fatalf("%q decodes to %v, which encodes to %q", b, list, got)
		}
	})
}
