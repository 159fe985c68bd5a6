package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/urfave/cli/v2"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/atomicfile"
	"github.com/flowmail/flowmail/node"
)

const contactsFileName = "contacts.toml"

// contactBook is the petname file: names the user chose for addresses.
type contactBook struct {
	Contacts map[string]string `toml:"contacts"`
	// Pins, by address, hold the key history first seen of each address
	// sent to or verified (pins.go).
	Pins map[string]*contactPin `toml:"pins,omitempty"`
}

var contactName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

func contactsPath(home string) string { return filepath.Join(home, contactsFileName) }

func loadContacts(home string) (*contactBook, error) {
	book := &contactBook{Contacts: map[string]string{}, Pins: map[string]*contactPin{}}
	b, err := readSmallFile(contactsPath(home), maxContactsFile)
	if errors.Is(err, fs.ErrNotExist) {
		return book, nil
	}
	if err != nil {
		return nil, err
	}
	if err := toml.Unmarshal(b, book); err != nil {
		return nil, fmt.Errorf("%s: %w (fix or remove the file)", contactsPath(home), err)
	}
	if book.Contacts == nil {
		book.Contacts = map[string]string{}
	}
	if book.Pins == nil {
		book.Pins = map[string]*contactPin{}
	}
	return book, nil
}

// maxContactsFile bounds the contacts file: 16 MiB is some 150,000 names.
const maxContactsFile = 16 << 20

func (b *contactBook) save(home string) error {
	data, err := toml.Marshal(b)
	if err != nil {
		return err
	}
	return atomicfile.Write(contactsPath(home), data, 0o600)
}

// resolveRecipient turns what a user typed after --to into an address:
// an address as people paste it (fm1…, fm1…@flowmail.invalid, or
// Bob <fm1…@flowmail.invalid> from a mail's From line), or a contact's
// name.
func resolveRecipient(home, s string) (block.ID, error) {
	s = strings.TrimSpace(s)
	if looksLikeAddress(s) {
		id, _, err := identity.ParseMailbox(s)
		if errors.Is(err, identity.ErrAddressTypo) && len(s) < len(identity.FormatAddress(block.ID{})) && !strings.ContainsAny(s, "@<") {
			return block.ID{}, fmt.Errorf("%q looks like a cut-off address: an address is %d characters long; copy it whole from `flowmail whoami`", s, len(identity.FormatAddress(block.ID{})))
		}
		return id, err
	}
	book, err := loadContacts(home)
	if err != nil {
		return block.ID{}, err
	}
	addr, ok := book.Contacts[strings.ToLower(s)]
	if !ok {
		return block.ID{}, fmt.Errorf("unknown recipient %q: not an address and not in your contacts (add it: flowmail contacts add %s fm1...)", s, s)
	}
	id, err := identity.ParseAddress(addr)
	if err != nil {
		return block.ID{}, fmt.Errorf("contact %q in %s: %w", s, contactsPath(home), err)
	}
	return id, nil
}

// looksLikeAddress tells an address from a contact name: names never
// start with fm1 (contacts add refuses them) and never hold @ or <.
func looksLikeAddress(s string) bool {
	return strings.HasPrefix(strings.ToLower(s), identity.AddressPrefix+"1") || strings.ContainsAny(s, "@<")
}

func contactsCommand(s *streams) *cli.Command {
	return &cli.Command{
		Name:   "contacts",
		Usage:  "names for addresses, so `send --to bob` works",
		Action: unknownCommand,
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "remember an address under a name, and pin its key history",
				ArgsUsage: "NAME ADDRESS | [NAME] USER@DOMAIN",
				Description: "ADDRESS is fm1…, fm1…@flowmail.invalid, or a mailbox as a mail's From line\n" +
					"shows it: 'Bob <fm1…@flowmail.invalid>' (quote it for the shell). USER@DOMAIN is a\n" +
					"human address: it resolves through the domain's DNS record and certificate, and is\n" +
					"pinned as send pins it; NAME is then optional.\n\n" +
					"add reads the address's key log at once and pins it, so a later change outside its\n" +
					"signed history is caught even before the first mail. Without a network the name is\n" +
					"saved and the key is pinned at the first send. An address that moved is followed to\n" +
					"its new address if you agree (--yes for scripts); a revoked or forked one is refused.",
				Flags:  append(append([]cli.Flag{yesFlag}, networkFlags()...), dnsFlags()...),
				Action: func(c *cli.Context) error { return contactsAdd(c, s) },
			},
			{
				Name:  "list",
				Usage: "print every contact and what is pinned of it",
				Description: "list shows each contact's address and pin (not yet pinned, pinned, verified, with\n" +
					"the key generation). --check also reads each key log from the network and says\n" +
					"whether the contact revoked its key, moved, forked, or changed outside the pinned\n" +
					"history.",
				Flags: append([]cli.Flag{
					&cli.BoolFlag{Name: "check", Usage: "read each contact's key log from the network"},
				}, networkFlags()...),
				Action: func(c *cli.Context) error {
					book, err := loadContacts(c.String("home"))
					if err != nil {
						return err
					}
					names := make([]string, 0, len(book.Contacts))
					for n := range book.Contacts {
						names = append(names, n)
					}
					sort.Strings(names)
					var logs delivery.KeyLogs
					if c.Bool("check") {
						n, err := startClient(c.Context, c, s)
						if err != nil {
							return err
						}
						defer n.Close()
						logs = n.DHT()
					}
					w := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
					for _, n := range names {
						state := pinState(book, book.Contacts[n])
						if logs != nil {
							state += "; " + networkState(c.Context, logs, book, book.Contacts[n])
						}
						fmt.Fprintf(w, "%s\t%s\t%s\n", n, book.Contacts[n], state)
					}
					return w.Flush()
				},
			},
			allowAddCommand(s, "allow"),
			allowRemoveCommand(s, "disallow"),
			allowListCommand(s, "grants"),
			contactsVerifyCommand(s),
			{
				Name:      "remove",
				Usage:     "forget a contact",
				ArgsUsage: "NAME",
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return errors.New("usage: flowmail contacts remove NAME")
					}
					name := strings.ToLower(c.Args().Get(0))
					home := c.String("home")
					book, err := loadContacts(home)
					if err != nil {
						return err
					}
					if _, ok := book.Contacts[name]; !ok {
						return fmt.Errorf("no contact named %q (see flowmail contacts list)", name)
					}
					delete(book.Contacts, name)
					return book.save(home)
				},
			},
		},
	}
}

// contactsAdd is `contacts add`: the name is saved, and the address's key
// log is resolved and pinned at once when a network can be joined
// (docs/PROTOCOL.md 15.5 pinning; 19.5 for USER@DOMAIN).
func contactsAdd(c *cli.Context, s *streams) error {
	var name, target string
	switch {
	case c.NArg() == 1 && isName(c.Args().Get(0)):
		target = c.Args().Get(0)
	case c.NArg() == 2:
		name, target = strings.ToLower(c.Args().Get(0)), c.Args().Get(1)
		if !contactName.MatchString(name) || strings.HasPrefix(name, identity.AddressPrefix+"1") {
			return fmt.Errorf("contact name %q: use letters, digits, '.', '_' or '-', not starting with fm1", c.Args().Get(0))
		}
	default:
		return errors.New("usage: flowmail contacts add NAME ADDRESS, or flowmail contacts add [NAME] USER@DOMAIN")
	}
	home := c.String("home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	var id block.ID
	byName := isName(target)
	if !byName {
		var err error
		if id, _, err = identity.ParseMailbox(target); err != nil {
			return err
		}
	}
	ctx := c.Context
	n, joinErr := startClient(ctx, c, s)
	if joinErr != nil && byName {
		return fmt.Errorf("%s is a name: resolving it needs the network: %w", target, joinErr)
	}
	if n != nil {
		defer n.Close()
	}
	shown := name
	if byName {
		resolver, err := nameResolver(c, n)
		if err != nil {
			return err
		}
		b, err := resolveName(ctx, s.err, home, resolver, target, time.Now())
		if err != nil {
			return nameAdvice(err, target)
		}
		id = b.Address()
		if shown == "" {
			shown = b.Name
		}
		fmt.Fprintf(s.err, "%s is %s\n", b.Name, identity.FormatAddress(id))
	}
	book, err := loadContacts(home)
	if err != nil {
		return err
	}
	if n == nil {
		fmt.Fprintf(s.err, "note: %s is saved but its key is not pinned yet (%v); it is pinned at your first send to it, or by `flowmail contacts verify %s`\n", shown, joinErr, shown)
	} else {
		_, addr, _, err := resolveContact(ctx, c, s, n, n.DHT(), book, shown, id)
		switch {
		case errors.Is(err, node.ErrNotFound) && !byName:
			fmt.Fprintf(s.err, "note: %s has no key in the network yet (%v); it is pinned at your first send to it\n", shown, err)
		case err != nil:
			return err
		default:
			id = addr
			p := book.Pins[identity.FormatAddress(id)]
			fmt.Fprintf(s.err, "pinned %s at key generation %d\n", shown, len(p.Keys)-1)
		}
	}
	if name != "" {
		if old, ok := book.Contacts[name]; ok && old != identity.FormatAddress(id) {
			fmt.Fprintf(s.err, "replacing %s: was %s\n", name, old)
		}
		book.Contacts[name] = identity.FormatAddress(id)
	}
	return book.save(home)
}
