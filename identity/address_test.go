package identity

import (
	"errors"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcutil/bech32"

	"github.com/flowmail/flowmail/block"
)

func timeUnix(s int64) time.Time { return time.Unix(s, 0) }

// bech32NotM encodes id with the original bech32 checksum, which flowmail
// must refuse.
func bech32NotM(id block.ID) string {
	data, _ := bech32.ConvertBits(id[:], 8, 5, true)
	s, _ := bech32.Encode(AddressPrefix, data)
	return s
}

func TestParseMailboxTakesAddressesAsPeoplePasteThem(t *testing.T) {
	id := block.Sum([]byte("bob"))
	addr := FormatAddress(id)
	for _, tc := range []struct {
		in, name string
	}{
		{addr, ""},
		{"  " + addr + "\n", ""},
		{strings.ToUpper(addr), ""},
		{addr + "@flowmail.invalid", ""},
		{addr + "@FlowMail.Invalid", ""},
		{strings.ToUpper(addr) + "@FLOWMAIL.INVALID", ""},
		{"Bob <" + addr + "@flowmail.invalid>", "Bob"},
		{"<" + addr + "@flowmail.invalid>", ""},
		{`"Smith, Bob" <` + addr + "@flowmail.invalid>", "Smith, Bob"},
		// As a delivered mail's From header carries it.
		{(&mail.Address{Name: "Björn Ø", Address: addr + "@" + MailDomain}).String(), "Björn Ø"},
	} {
		got, name, err := ParseMailbox(tc.in)
		if err != nil || got != id || name != tc.name {
			t.Errorf("ParseMailbox(%q) = %v, %q, %v; want %v, %q", tc.in, got.Short(), name, err, id.Short(), tc.name)
		}
	}
}

func TestParseMailboxRefusesOtherAddressesWithTypedErrors(t *testing.T) {
	addr := FormatAddress(block.Sum([]byte("bob")))
	typo := addr[:20] + string(map[bool]byte{true: 'p', false: 'q'}[addr[20] == 'q']) + addr[21:]
	for _, tc := range []struct {
		in   string
		want error
	}{
		{"", ErrAddressFormat},
		{addr + "@example.com", ErrAddressFormat},
		{"Bob <" + addr + "@example.com>", ErrAddressFormat},
		{"Bob <" + addr + "@flowmail.invalid", ErrAddressFormat},
		{"Bob <" + typo + "@flowmail.invalid>", ErrAddressTypo},
		{typo + "@flowmail.invalid", ErrAddressTypo},
		{"alice@example.com, " + addr + "@flowmail.invalid", ErrAddressFormat},
		{strings.Repeat("a", maxMailboxText+1), ErrAddressFormat},
	} {
		if _, _, err := ParseMailbox(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("ParseMailbox(%.60q): %v, want %v", tc.in, err, tc.want)
		}
	}
}

// FuzzParseMailbox: whatever is pasted, the parser returns an address
// or a typed error, never panics, and an address it returns is one that
// the canonical parser gives for the text form.
func FuzzParseMailbox(f *testing.F) {
	addr := FormatAddress(block.Sum([]byte("bob")))
	for _, s := range []string{addr, addr + "@flowmail.invalid", "Bob <" + addr + "@flowmail.invalid>",
		`"a\"b" <` + addr + "@FLOWMAIL.INVALID>", "=?utf-8?q?Bj=C3=B6rn?= <" + addr + "@flowmail.invalid>", "<>", "@", "a@b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, _, err := ParseMailbox(s)
		if err != nil {
			if !errors.Is(err, ErrAddressFormat) && !errors.Is(err, ErrAddressTypo) {
				t.Fatalf("untyped error for %q: %v", s, err)
			}
			return
		}
		again, err := ParseAddress(FormatAddress(id))
		if err != nil || again != id {
			t.Fatalf("%q gave %v, which does not round-trip: %v", s, id, err)
		}
	})
}
