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

	"github.com/pelletier/go-toml/v2"
	"github.com/urfave/cli/v2"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/atomicfile"
)

const contactsFileName = "contacts.toml"

// contactBook is the petname file: names the user chose for addresses.
type contactBook struct {
	Contacts map[string]string `toml:"contacts"`
}

var contactName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

func contactsPath(home string) string { return filepath.Join(home, contactsFileName) }

func loadContacts(home string) (*contactBook, error) {
	book := &contactBook{Contacts: map[string]string{}}
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
				Usage:     "remember an address under a name",
				ArgsUsage: "NAME ADDRESS",
				Description: "ADDRESS is fm1…, fm1…@flowmail.invalid, or a mailbox as a mail's From line\n" +
					"shows it: 'Bob <fm1…@flowmail.invalid>' (quote it for the shell).",
				Action: func(c *cli.Context) error {
					if c.NArg() != 2 {
						return errors.New("usage: flowmail contacts add NAME ADDRESS")
					}
					name := strings.ToLower(c.Args().Get(0))
					if !contactName.MatchString(name) || strings.HasPrefix(name, identity.AddressPrefix+"1") {
						return fmt.Errorf("contact name %q: use letters, digits, '.', '_' or '-', not starting with fm1", c.Args().Get(0))
					}
					id, _, err := identity.ParseMailbox(c.Args().Get(1))
					if err != nil {
						return err
					}
					home := c.String("home")
					book, err := loadContacts(home)
					if err != nil {
						return err
					}
					if old, ok := book.Contacts[name]; ok && old != identity.FormatAddress(id) {
						fmt.Fprintf(s.err, "replacing %s: was %s\n", name, old)
					}
					book.Contacts[name] = identity.FormatAddress(id)
					if err := os.MkdirAll(home, 0o700); err != nil {
						return err
					}
					return book.save(home)
				},
			},
			{
				Name:  "list",
				Usage: "print every contact",
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
					w := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
					for _, n := range names {
						fmt.Fprintf(w, "%s\t%s\n", n, book.Contacts[n])
					}
					return w.Flush()
				},
			},
			allowAddCommand(s, "allow"),
			allowRemoveCommand(s, "disallow"),
			allowListCommand(s, "grants"),
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
