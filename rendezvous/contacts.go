package rendezvous

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// The library's own routing-table file lives under $HOME and is switched
// off; this small file in Config.StateDir takes its place: mainline nodes
// that spoke to us, fed back to the DHT on the next start so it does not
// depend on the public routers alone.
const (
	contactsFile = "mainline-contacts"
	// maxContacts caps the file; a restart needs a few live nodes, not a
	// routing table.
	maxContacts = 64
	// maxContactsFileSize is maxContacts lines of the longest form,
	// "255.255.255.255:65535\n".
	maxContactsFileSize = maxContacts * len("255.255.255.255:65535\n")
)

// ErrContactsFile is returned for a contacts file that breaks its format.
var ErrContactsFile = errors.New("rendezvous: malformed contacts file")

// parseContacts decodes a contacts file: one IPv4 "ip:port" per line in
// canonical form, each line ending in "\n", no duplicates, at most
// maxContacts lines. It is strict so that decoding then encoding gives
// the same bytes.
func parseContacts(b []byte) ([]netip.AddrPort, error) {
	if len(b) > maxContactsFileSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrContactsFile, len(b), maxContactsFileSize)
	}
	if len(b) == 0 {
		return nil, nil
	}
	if b[len(b)-1] != '\n' {
		return nil, fmt.Errorf("%w: last line does not end in a newline", ErrContactsFile)
	}
	lines := strings.Split(string(b[:len(b)-1]), "\n")
	if len(lines) > maxContacts {
		return nil, fmt.Errorf("%w: %d lines, limit %d", ErrContactsFile, len(lines), maxContacts)
	}
	out := make([]netip.AddrPort, 0, len(lines))
	seen := make(map[netip.AddrPort]bool, len(lines))
	for i, line := range lines {
		ap, err := netip.ParseAddrPort(line)
		switch {
		case err != nil:
			return nil, fmt.Errorf("%w: line %d: %v", ErrContactsFile, i+1, err)
		case !ap.Addr().Is4():
			return nil, fmt.Errorf("%w: line %d: %q is not an IPv4 address", ErrContactsFile, i+1, line)
		case ap.Port() == 0:
			return nil, fmt.Errorf("%w: line %d: port 0", ErrContactsFile, i+1)
		case ap.String() != line:
			return nil, fmt.Errorf("%w: line %d: %q is not in canonical form %q", ErrContactsFile, i+1, line, ap.String())
		case seen[ap]:
			return nil, fmt.Errorf("%w: line %d: %v repeated", ErrContactsFile, i+1, ap)
		}
		seen[ap] = true
		out = append(out, ap)
	}
	return out, nil
}

// formatContacts is the inverse of parseContacts.
func formatContacts(contacts []netip.AddrPort) []byte {
	var b bytes.Buffer
	for _, c := range contacts {
		b.WriteString(c.String())
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// loadContacts reads dir's contacts file; a missing file is no contacts.
func loadContacts(dir string) ([]netip.AddrPort, error) {
	f, err := os.Open(filepath.Join(dir, contactsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(maxContactsFileSize)+1))
	if err != nil {
		return nil, err
	}
	return parseContacts(b)
}

// saveContacts replaces dir's contacts file atomically, so a crash leaves
// either the old file or the new one.
func saveContacts(dir string, contacts []netip.AddrPort) error {
	if len(contacts) > maxContacts {
		contacts = contacts[:maxContacts]
	}
	tmp, err := os.CreateTemp(dir, "."+contactsFile+"-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(formatContacts(contacts))
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), filepath.Join(dir, contactsFile))
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("rendezvous: saving %s: %w", contactsFile, werr)
	}
	return nil
}
