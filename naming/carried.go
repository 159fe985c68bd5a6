package naming

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/record"
)

// A sender carries its name certificate in a header field of the message
// (docs/PROTOCOL.md 19.8), inside the mail's encryption; the recipient
// checks it (Resolver.Verify) and shows the name.
const (
	// CertHeader carries the certificate: standard base64, padded,
	// folded into lines of at most 76 characters.
	CertHeader = "Flowmail-Name-Certificate"
	// NameHeader is written by the recipient's client, never trusted from
	// a sender: clients drop every one a message carries.
	NameHeader = "Flowmail-Name"
	// MaxCarriedSize bounds a CertHeader value (whitespace removed).
	MaxCarriedSize = (block.MaxRecordSize + 2) / 3 * 4
)

// CarriedField is the header field carrying cert, CRLF line ends.
func CarriedField(cert []byte) string {
	v := base64.StdEncoding.EncodeToString(cert)
	var b strings.Builder
	b.WriteString(CertHeader + ":")
	for len(v) > 0 {
		n := min(len(v), 76)
		b.WriteString(" " + v[:n] + "\r\n")
		v = v[n:]
	}
	return b.String()
}

// ParseCarried reads a CertHeader value (unfolded or not: whitespace is
// removed) into a name certificate, verified as a node verifies records
// (record.Parse). It does not check it against DNS: Resolver.Verify does.
func ParseCarried(value string) (*record.Record, error) {
	if len(value) > 2*MaxCarriedSize { // whitespace included, before removing it
		return nil, fmt.Errorf("%w: %d bytes", ErrCarried, len(value))
	}
	v := strings.Join(strings.Fields(value), "")
	if len(v) > MaxCarriedSize {
		return nil, fmt.Errorf("%w: %d bytes of base64, at most %d", ErrCarried, len(v), MaxCarriedSize)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCarried, err)
	}
	rec, err := record.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCarried, err)
	}
	if rec.Kind != record.KindName {
		return nil, fmt.Errorf("%w: %w: a %v", ErrCarried, record.ErrKind, rec.Kind)
	}
	return rec, nil
}
