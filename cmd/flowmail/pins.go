package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/record"
)

// contactPin is what the user's client saw of an address's key log
// (docs/PROTOCOL.md 15.5, pinning): the signing key of each generation,
// oldest first, and when the user compared safety codes.
type contactPin struct {
	Keys     []string `toml:"keys"`               // hex, generation 0 first
	Verified string   `toml:"verified,omitempty"` // RFC 3339: when the safety code was confirmed
	// Refreshed is when this client last re-stored the address's key log
	// (RFC 3339; refresh.go).
	Refreshed string `toml:"refreshed,omitempty"`
}

func pinOf(st record.KeyState) *contactPin {
	p := &contactPin{}
	for _, k := range st.Keys {
		p.Keys = append(p.Keys, hex.EncodeToString(k[:]))
	}
	return p
}

func (p *contactPin) keys() ([][32]byte, error) {
	out := make([][32]byte, len(p.Keys))
	for i, s := range p.Keys {
		b, err := hex.DecodeString(s)
		if err != nil || len(b) != 32 {
			return nil, fmt.Errorf("pinned key %d is not 64 hex digits", i)
		}
		out[i] = [32]byte(b)
	}
	return out, nil
}

// checkPin holds a resolved state against the pin of its address: the
// first state seen is pinned (trust on first use); one that extends the
// pin (a rotation signed by the committed key) is accepted and noted
// once; any other is refused with record.ErrKeyChanged until the user
// accepts it (contacts verify --confirm NAME). It reports whether the book
// changed.
func checkPin(book *contactBook, name string, st record.KeyState, note io.Writer) (bool, error) {
	addr := identity.FormatAddress(st.Address)
	p := book.Pins[addr]
	if p == nil {
		book.Pins[addr] = pinOf(st)
		return true, nil
	}
	pinned, err := p.keys()
	if err != nil {
		return false, fmt.Errorf("the pin of %s in the contacts file: %w (remove it to pin again)", addr, err)
	}
	if err := st.Follows(pinned); err != nil {
		return false, fmt.Errorf("the key of %s changed outside its signed history, so this may not be them: "+
			"nothing was sent. Compare the safety code with them in person or by phone (`flowmail contacts verify %s`), "+
			"then accept the new key with `flowmail contacts verify --confirm %s` (%w)", name, name, name, err)
	}
	if len(st.Keys) > len(pinned) {
		fmt.Fprintf(note, "note: %s rotated its key to generation %d, signed with the key it had committed to: accepted\n", name, st.Generation)
		p.Keys = pinOf(st).Keys
		return true, nil
	}
	return false, nil
}

// ownAddress is the user's address without the passphrase when the
// key log or identity.pub is there.
func ownAddress(c *cli.Context, s *streams) (block.ID, error) {
	if log, err := readKeyLog(c); err == nil {
		return log.KeyLog.Address(), nil
	}
	if pub, err := readPubFile(c); err == nil {
		return pub.Owner, nil
	}
	id, err := loadIdentity(c, s)
	if err != nil {
		return block.ID{}, err
	}
	return id.ID(), nil
}

func contactsVerifyCommand(s *streams) *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "print the safety code you and a contact compare, and pin their key once you did",
		ArgsUsage: "NAME",
		Description: "verify resolves the contact's key log, prints the safety code of your two addresses\n" +
			"(the same on both sides) and whether their key follows what you pinned. Compare\n" +
			"the code with them in person or by phone; if it matches, run again with --confirm:\n" +
			"that records the check and accepts their current key, even one that changed.",
		Flags: append(append([]cli.Flag{
			&cli.BoolFlag{Name: "confirm", Usage: "the codes matched: record it and pin the contact's current key"},
		}, networkFlags()...), passphraseFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("usage: flowmail contacts verify [--confirm] NAME (flags before the name)")
			}
			name, home := c.Args().Get(0), c.String("home")
			them, err := resolveRecipient(home, name)
			if err != nil {
				return err
			}
			me, err := ownAddress(c, s)
			if err != nil {
				return err
			}
			n, err := startClient(c.Context, c, s)
			if err != nil {
				return err
			}
			defer n.Close()
			_, st, err := delivery.ResolveRecipient(c.Context, n, n.DHT(), them)
			if err != nil {
				return recipientAdvice(name, st, err)
			}
			book, err := loadContacts(home)
			if err != nil {
				return err
			}
			state := "pinned now (first seen)"
			if p := book.Pins[identity.FormatAddress(them)]; p != nil {
				pinned, err := p.keys()
				switch {
				case err != nil:
					state = "pin unreadable: " + err.Error()
				case st.Follows(pinned) != nil:
					state = "CHANGED outside its signed history: " + st.Follows(pinned).Error()
				case p.Verified != "":
					state = "follows the pinned history; safety code confirmed " + p.Verified
				default:
					state = "follows the pinned history; safety code not yet confirmed"
				}
			}
			fmt.Fprintf(s.out, "safety code with %s:\n  %s\n", name, record.SafetyCode(me, them))
			fmt.Fprintf(s.out, "key: generation %d, %s\n", st.Generation, state)
			if !c.Bool("confirm") {
				if _, ok := book.Pins[identity.FormatAddress(them)]; !ok {
					book.Pins[identity.FormatAddress(them)] = pinOf(st)
					if err := book.save(home); err != nil {
						return err
					}
				}
				fmt.Fprintf(s.err, "Compare the code with %s out of band; if it matches: flowmail contacts verify --confirm %s\n", name, name)
				return nil
			}
			p := pinOf(st)
			p.Verified = time.Now().UTC().Format(time.RFC3339)
			book.Pins[identity.FormatAddress(them)] = p
			if err := book.save(home); err != nil {
				return err
			}
			fmt.Fprintf(s.out, "Verified: %s's current key is pinned.\n", name)
			return nil
		},
	}
}

// pinState is what contacts list shows of an address.
func pinState(book *contactBook, addr string) string {
	p := book.Pins[addr]
	switch {
	case p == nil:
		return "not yet pinned"
	case p.Verified != "":
		return fmt.Sprintf("verified, generation %d", len(p.Keys)-1)
	}
	return fmt.Sprintf("pinned, generation %d", len(p.Keys)-1)
}

// networkState is what contacts list --check shows of addr's key log now,
// against its pin.
func networkState(ctx context.Context, logs delivery.KeyLogs, book *contactBook, addr string) string {
	id, err := identity.ParseAddress(addr)
	if err != nil {
		return "unreadable address"
	}
	st, err := logs.KeyState(ctx, id)
	switch {
	case err != nil:
		return "not found in the network"
	case st.Revoked:
		return "REVOKED"
	case st.Forked:
		return "FORKED (two key histories: compromised)"
	case st.Moved:
		return "MOVED to " + identity.FormatAddress(st.MovedTo)
	}
	if p := book.Pins[addr]; p != nil {
		pinned, err := p.keys()
		if err == nil && st.Follows(pinned) != nil {
			return "CHANGED outside its signed history"
		}
	}
	return fmt.Sprintf("network: generation %d", st.Generation)
}
