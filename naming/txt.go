package naming

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

// The domain record (docs/PROTOCOL.md 19.1).
const (
	// TXTPrefix is the label under which a domain publishes its record.
	TXTPrefix = "_flowmail."
	// MaxTXTSize is the longest record text: one DNS character-string.
	MaxTXTSize = 255

	versionTag = "v=fm1"
	familyTag  = "v=fm" // a record of any flowmail version starts so
	keyText    = 43     // base64url without padding of 32 bytes
)

// Key is a domain's Ed25519 public key.
type Key = [ed25519.PublicKeySize]byte

// Record is what a domain publishes at _flowmail.<domain>: the keys that
// sign its name certificates (several during a rollover, the preferred
// first) and, optionally, its server's node address and where to reach it.
type Record struct {
	Keys   []Key
	Server block.ID // the domain server's node address; zero when none
	At     string   // host:port of the domain server; "" when none
}

var b64 = base64.RawURLEncoding.Strict()

// Text returns the record in its canonical form, as `domain init` prints
// it: "v=fm1; k=…; k=…; srv=fm1…; at=host:port".
func (r *Record) Text() string {
	var b strings.Builder
	b.WriteString(versionTag)
	for _, k := range r.Keys {
		b.WriteString("; k=")
		b.WriteString(b64.EncodeToString(k[:]))
	}
	if !r.Server.IsZero() {
		b.WriteString("; srv=")
		b.WriteString(identity.FormatAddress(r.Server))
	}
	if r.At != "" {
		b.WriteString("; at=")
		b.WriteString(r.At)
	}
	return b.String()
}

// ZoneLine returns the record as one zone-file line for domain (in
// A-label form): `_flowmail.DOMAIN. IN TXT "…"`. The text needs no
// escaping: the grammar has no quote or backslash.
func (r *Record) ZoneLine(domain string) string {
	return TXTPrefix + strings.TrimSuffix(domain, ".") + `. IN TXT "` + r.Text() + `"`
}

// Check reports whether the record, built by a program (domain init),
// is one clients accept: its text parses back to it and fits in a TXT
// character-string.
func (r *Record) Check() error {
	got, err := ParseRecord(r.Text())
	if err != nil {
		return err
	}
	if got.Text() != r.Text() {
		return fmt.Errorf("%w: %q does not parse back to itself", ErrMalformed, clip(r.Text()))
	}
	return nil
}

// Lists reports whether the record lists k.
func (r *Record) Lists(k Key) bool {
	for _, have := range r.Keys {
		if have == k {
			return true
		}
	}
	return false
}

// SelectRecord picks the flowmail record among the texts of the TXT
// records found at _flowmail.<domain> (each record's character-strings
// joined). Texts that do not start with "v=fm" belong to others and are
// ignored; records of another flowmail version are ignored when a version
// 1 record exists.
func SelectRecord(texts []string) (*Record, error) {
	var ours []string
	others := 0
	for _, t := range texts {
		switch v := version(t); {
		case v == "":
		case v == "fm1":
			ours = append(ours, t)
		default:
			others++
		}
	}
	switch {
	case len(ours) > 1:
		return nil, fmt.Errorf("%w: %d version 1 records (%q and %q): publish exactly one", ErrConflict, len(ours), clip(ours[0]), clip(ours[1]))
	case len(ours) == 1:
		return ParseRecord(ours[0])
	case others > 0:
		return nil, fmt.Errorf("%w: %d records of a flowmail version this client does not know, none of version 1", ErrVersion, others)
	}
	return nil, fmt.Errorf("%w: %d TXT records, none starting %q", ErrNoRecord, len(texts), familyTag)
}

// version returns the version tag's value of a flowmail record ("fm1"),
// or "" for a text that is not one.
func version(t string) string {
	if !strings.HasPrefix(t, familyTag) {
		return ""
	}
	v, _, _ := strings.Cut(t[len("v="):], ";")
	return strings.TrimRight(v, " ")
}

// ParseRecord parses the text of one version 1 record, strictly.
func ParseRecord(text string) (*Record, error) {
	if len(text) > MaxTXTSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformed, len(text), MaxTXTSize)
	}
	for i := 0; i < len(text); i++ {
		if c := text[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return nil, fmt.Errorf("%w: byte %#02x at %d (printable ASCII only, no quote or backslash)", ErrMalformed, c, i)
		}
	}
	parts := strings.Split(text, ";")
	for i := range parts {
		parts[i] = strings.Trim(parts[i], " ") // spaces around a separator are allowed
	}
	if parts[0] != versionTag {
		if version(text) == "fm1" {
			return nil, fmt.Errorf("%w: %q must open the record", ErrMalformed, versionTag)
		}
		return nil, fmt.Errorf("%w: the record does not open with %q", ErrVersion, versionTag)
	}
	if parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1] // one final separator is allowed
	}
	r := &Record{}
	seenSrv := false
	for _, p := range parts[1:] {
		name, value, ok := strings.Cut(p, "=")
		switch {
		case p == "":
			return nil, fmt.Errorf("%w: an empty tag", ErrMalformed)
		case !ok || !tagName(name):
			return nil, fmt.Errorf("%w: %q is not name=value with a lower-case name", ErrMalformed, clip(p))
		case value == "" || strings.Contains(value, " "):
			return nil, fmt.Errorf("%w: tag %s has an empty value or one with a space", ErrMalformed, name)
		}
		switch name {
		case "k":
			k, err := ParseKey(value)
			if err != nil {
				return nil, err
			}
			if r.Lists(k) {
				return nil, fmt.Errorf("%w: key %s listed twice", ErrMalformed, value)
			}
			r.Keys = append(r.Keys, k)
		case "srv":
			if seenSrv {
				return nil, fmt.Errorf("%w: two srv tags", ErrMalformed)
			}
			seenSrv = true
			id, err := identity.ParseAddress(value)
			if err != nil || identity.FormatAddress(id) != value {
				return nil, fmt.Errorf("%w: srv %q is not a flowmail address in lower case", ErrMalformed, clip(value))
			}
			r.Server = id
		case "at":
			if r.At != "" {
				return nil, fmt.Errorf("%w: two at tags", ErrMalformed)
			}
			if err := checkHostPort(value); err != nil {
				return nil, err
			}
			r.At = value
		default:
			// Unknown tags are ignored: version 1 may gain optional
			// ones; anything a client must understand needs a new version.
		}
	}
	if len(r.Keys) == 0 {
		return nil, fmt.Errorf("%w: no key (k=)", ErrMalformed)
	}
	return r, nil
}

func tagName(s string) bool {
	if s == "" || len(s) > 16 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// ParseKey decodes a domain key as the record writes it: base64url
// without padding, canonical, not of small order (under such a key anyone
// can make signatures up).
func ParseKey(s string) (Key, error) {
	var k Key
	if len(s) != keyText {
		return k, fmt.Errorf("%w: key of %d characters, want %d (base64url of 32 bytes, no padding)", ErrMalformed, len(s), keyText)
	}
	n, err := b64.Decode(k[:], []byte(s))
	if err != nil || n != len(k) {
		return k, fmt.Errorf("%w: key %q is not canonical base64url", ErrMalformed, s)
	}
	if identity.SmallOrder(k[:]) {
		return k, fmt.Errorf("%w: key %s is of small order or not canonically encoded", ErrMalformed, s)
	}
	return k, nil
}

// FormatKey writes a domain key as the record does.
func FormatKey(k Key) string { return b64.EncodeToString(k[:]) }

// checkHostPort accepts host:port with a lower-case DNS name, an IPv4
// address or a bracketed IPv6 address, and a port from 1 to 65535 without
// leading zeros.
func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%w: at %q is not host:port", ErrMalformed, clip(s))
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 || strconv.FormatUint(p, 10) != port {
		return fmt.Errorf("%w: at %q: port must be 1 to 65535", ErrMalformed, clip(s))
	}
	if a, err := netip.ParseAddr(host); err == nil {
		// The bracketed form for IPv6, the plain form for IPv4, no zone.
		if a.Zone() != "" || a.String() != host || a.Is6() != strings.HasPrefix(s, "[") {
			return fmt.Errorf("%w: at %q: address not in its canonical form", ErrMalformed, clip(s))
		}
		return nil
	}
	if strings.HasPrefix(s, "[") || !hostName(host) {
		return fmt.Errorf("%w: at %q: host is neither an IP address nor a lower-case DNS name", ErrMalformed, clip(s))
	}
	return nil
}

func hostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// clip shortens outside text quoted in an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
