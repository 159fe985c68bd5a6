package identity

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"

	"github.com/btcsuite/btcd/btcutil/bech32"

	"github.com/flowmail/flowmail/block"
)

// AddressPrefix is the human-readable part of every address: "fm1" then
// the bech32m characters of the 32-byte ID.
const AddressPrefix = "fm"

// MailDomain is the domain of flowmail addresses in mail headers
// (docs/PROTOCOL.md section 3): reserved, so such an address can never
// route to SMTP. Delivered mail names its sender as fm1…@flowmail.invalid.
const MailDomain = "flowmail.invalid"

// Errors of ParseAddress. A typo (checksum mismatch, a character outside
// the alphabet) is reported as such, never as an unknown address.
var (
	ErrAddressTypo   = errors.New("address has a typo")
	ErrAddressFormat = errors.New("not a flowmail address")
)

// FormatAddress returns the text form of an ID: bech32m with prefix "fm".
func FormatAddress(id block.ID) string {
	data, err := bech32.ConvertBits(id[:], 8, 5, true)
	if err == nil {
		var s string
		if s, err = bech32.EncodeM(AddressPrefix, data); err == nil {
			return s
		}
	}
	panic("identity: bech32m of 32 bytes cannot fail: " + err.Error())
}

// ParseAddress parses the text form. Case-insensitive (but not mixed),
// surrounding spaces ignored.
func ParseAddress(s string) (block.ID, error) {
	var id block.ID
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(strings.ToLower(s), AddressPrefix+"1") {
		return id, fmt.Errorf("%w: %q does not start with %q", ErrAddressFormat, s, AddressPrefix+"1")
	}
	hrp, data, version, err := bech32.DecodeGeneric(s)
	if err != nil {
		var cs bech32.ErrInvalidChecksum
		var nc bech32.ErrNonCharsetChar
		switch {
		case errors.As(err, &cs):
			return id, fmt.Errorf("%w: %q: checksum does not match; check each character", ErrAddressTypo, s)
		case errors.As(err, &nc):
			return id, fmt.Errorf("%w: %q: character %q cannot appear in an address (b, i, o and 1 after the prefix are never used)", ErrAddressTypo, s, rune(nc))
		case errors.As(err, new(bech32.ErrMixedCase)):
			return id, fmt.Errorf("%w: %q mixes upper and lower case", ErrAddressFormat, s)
		}
		return id, fmt.Errorf("%w: %q: %v", ErrAddressFormat, s, err)
	}
	if hrp != AddressPrefix {
		return id, fmt.Errorf("%w: %q has prefix %q", ErrAddressFormat, s, hrp)
	}
	if version != bech32.VersionM {
		return id, fmt.Errorf("%w: %q uses a bech32 checksum, flowmail uses bech32m", ErrAddressTypo, s)
	}
	raw, err := bech32.ConvertBits(data, 5, 8, false)
	if err != nil || len(raw) != block.IDSize {
		return id, fmt.Errorf("%w: %q is %d characters long; a full address has %d (missing or extra characters?)", ErrAddressTypo, s, len(s), len(FormatAddress(id)))
	}
	copy(id[:], raw)
	return id, nil
}

// maxMailboxText bounds what ParseMailbox reads: a display name and an
// address fit many times over; a paste of a whole header block does not.
const maxMailboxText = 1024

// ParseMailbox parses an address as people type or paste it:
//
//	fm1…                                  the address alone
//	fm1…@flowmail.invalid                 as mail headers carry it (the domain in any case)
//	Bob <fm1…@flowmail.invalid>           an RFC 5322 mailbox with a display name
//
// It returns the address and the display name ("" when none). The
// mailbox form is parsed by net/mail, so quoting and encoded words work
// as in any mail header.
func ParseMailbox(s string) (id block.ID, name string, err error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return id, "", fmt.Errorf("%w: empty", ErrAddressFormat)
	case len(s) > maxMailboxText:
		return id, "", fmt.Errorf("%w: %d characters, more than a mailbox holds", ErrAddressFormat, len(s))
	case !strings.ContainsAny(s, "<>\"(),;:"):
		id, err = parseAddrSpec(s)
		return id, "", err
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return id, "", fmt.Errorf("%w: %q is not a mailbox such as Bob <fm1…@%s>: %v", ErrAddressFormat, s, MailDomain, err)
	}
	id, err = parseAddrSpec(a.Address)
	return id, a.Name, err
}

// parseAddrSpec parses fm1… or fm1…@flowmail.invalid.
func parseAddrSpec(s string) (block.ID, error) {
	local, domain, ok := strings.Cut(s, "@")
	if !ok {
		return ParseAddress(s)
	}
	if !strings.EqualFold(domain, MailDomain) {
		return block.ID{}, fmt.Errorf("%w: %q is at %q; flowmail addresses are fm1… or fm1…@%s", ErrAddressFormat, s, domain, MailDomain)
	}
	return ParseAddress(local)
}
