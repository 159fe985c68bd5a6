package node

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/internal/atomicfile"
	"github.com/flowmail/flowmail/transport"
)

// ParseContact parses a bootstrap peer: "host:port", or "ID@host:port"
// with the node ID in hex (the ID is then checked at the handshake).
// Host must be an IP address: a node must not depend on DNS to start.
func ParseContact(s string) (transport.Contact, error) {
	var c transport.Contact
	s = strings.TrimSpace(s)
	if idPart, addrPart, ok := strings.Cut(s, "@"); ok {
		id, err := block.ParseHexID(idPart)
		if err != nil {
			return c, fmt.Errorf("%w: %q: node ID: %w", ErrBadContact, s, err)
		}
		c.ID, s = id, addrPart
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return c, fmt.Errorf("%w: %q: %v", ErrBadContact, s, err)
	}
	if ap.Port() == 0 {
		return c, fmt.Errorf("%w: %q: port 0", ErrBadContact, s)
	}
	c.Addr = ap
	return c, nil
}

// FormatContact is the inverse of ParseContact.
func FormatContact(c transport.Contact) string {
	if c.ID.IsZero() {
		return c.Addr.String()
	}
	return c.ID.String() + "@" + c.Addr.String()
}

// maxBootstrapLines bounds a bootstrap file: it is read at every start.
const maxBootstrapLines = 4096

// ReadBootstrapFile reads contacts, one per line; blank lines and lines
// starting with # are skipped.
func ReadBootstrapFile(path string) ([]transport.Contact, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseBootstrapLines(f, path)
}

// maxBootstrapFile bounds a bootstrap list: maxBootstrapLines lines of
// NODEID@[IPv6]:port and some comments fit well within it.
const maxBootstrapFile = 1 << 20

func parseBootstrapLines(r io.Reader, name string) ([]transport.Contact, error) {
	var out []transport.Contact
	b, err := io.ReadAll(io.LimitReader(r, maxBootstrapFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(b) > maxBootstrapFile {
		// Cut short, its last line could read as a wrong port.
		return nil, fmt.Errorf("%w: %s: over %d bytes", ErrBootstrapFile, name, maxBootstrapFile)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if len(out) == maxBootstrapLines {
			return nil, fmt.Errorf("%w: %s: more than %d peers", ErrBootstrapFile, name, maxBootstrapLines)
		}
		c, err := ParseContact(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s: no peers in the file", ErrBootstrapFile, name)
	}
	return out, nil
}

// WriteBootstrapFile writes contacts in the form ReadBootstrapFile reads.
func WriteBootstrapFile(path string, cs []transport.Contact, comment string) error {
	var b strings.Builder
	for _, l := range strings.Split(comment, "\n") {
		if l != "" {
			fmt.Fprintf(&b, "# %s\n", l)
		}
	}
	for _, c := range cs {
		b.WriteString(FormatContact(c) + "\n")
	}
	return atomicfile.Write(path, []byte(b.String()), 0o644)
}
