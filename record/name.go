package record

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Name limits (docs/PROTOCOL.md 15.3): RFC 5321's 64-byte local part, and
// 254 bytes in all, the longest address an SMTP path can carry.
const (
	MaxLocalPart = 64
	MaxNameSize  = 254
	maxDomain    = 253
	maxLabel     = 63
)

// domainProfile is UTS 46 processing for lookup (RFC 5891 section 5):
// case folding and NFC mapping, STD3 rules (letters, digits, hyphens), the
// hyphen and bidi checks, output in A-label form.
var domainProfile = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.ValidateLabels(true), idna.StrictDomainName(true), idna.Transitional(false))

// Normalise returns the form of a mail-style name (local@domain) that name
// certificates carry and slots derive from: the local part lower-cased
// ASCII (letters, digits and . _ + -, no dot first, last or doubled), the
// domain in IDNA A-label form, lower case, without a final dot, at least two
// labels, the last not all digits. Anything else is ErrName: quoted local
// parts, non-ASCII local parts (SMTPUTF8), address literals, white space.
func Normalise(name string) (string, error) {
	if len(name) > 4*MaxNameSize {
		return "", fmt.Errorf("%w: %d bytes", ErrName, len(name))
	}
	local, domain, ok := strings.Cut(name, "@")
	if !ok || strings.Contains(domain, "@") {
		return "", fmt.Errorf("%w: %q is not local@domain", ErrName, name)
	}
	l, err := normaliseLocal(local)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrName, name, err)
	}
	d, err := normaliseDomain(domain)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrName, name, err)
	}
	out := l + "@" + d
	if len(out) > MaxNameSize {
		return "", fmt.Errorf("%w: %q is %d bytes, at most %d", ErrName, name, len(out), MaxNameSize)
	}
	return out, nil
}

func normaliseLocal(s string) (string, error) {
	if len(s) == 0 || len(s) > MaxLocalPart {
		return "", fmt.Errorf("local part of %d bytes, want 1 to %d", len(s), MaxLocalPart)
	}
	b := []byte(s)
	for i, c := range b {
		switch {
		case 'A' <= c && c <= 'Z':
			b[i] = c + 'a' - 'A'
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '_', c == '+', c == '-':
		case c == '.':
			if i == 0 || i == len(b)-1 || b[i-1] == '.' {
				return "", fmt.Errorf("a dot first, last or doubled in the local part")
			}
		case c >= 0x80:
			return "", fmt.Errorf("non-ASCII local part (internationalised local parts are not supported)")
		default:
			return "", fmt.Errorf("character %q in the local part", c)
		}
	}
	return string(b), nil
}

func normaliseDomain(s string) (string, error) {
	s = strings.TrimSuffix(s, ".")
	if s == "" || strings.HasPrefix(s, "[") {
		return "", fmt.Errorf("no domain name (address literals are not names)")
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("domain is not UTF-8")
	}
	a, err := domainProfile.ToASCII(s)
	if err != nil {
		return "", fmt.Errorf("domain: %v", err)
	}
	// The A-label form must be a fixed point, or one name would have two
	// slots.
	if again, err := domainProfile.ToASCII(a); err != nil || again != a {
		return "", fmt.Errorf("domain %q does not survive its own normalisation", a)
	}
	if len(a) > maxDomain {
		return "", fmt.Errorf("domain of %d bytes, at most %d", len(a), maxDomain)
	}
	labels := strings.Split(a, ".")
	if len(labels) < 2 {
		return "", fmt.Errorf("domain %q has one label", a)
	}
	for _, l := range labels {
		if len(l) == 0 || len(l) > maxLabel {
			return "", fmt.Errorf("domain label of %d bytes, want 1 to %d", len(l), maxLabel)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return "", fmt.Errorf("character %q in domain %q", c, a)
			}
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return "", fmt.Errorf("top-level label %q is all digits (an IP address is not a name)", labels[len(labels)-1])
	}
	return a, nil
}
