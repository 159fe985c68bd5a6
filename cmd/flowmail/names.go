package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/urfave/cli/v2"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/atomicfile"
	"github.com/flowmail/flowmail/naming"
	"github.com/flowmail/flowmail/node"
	"github.com/flowmail/flowmail/record"
)

// recordDHT is what names need of the network: records at their slots
// (docs/PROTOCOL.md 15.4) and an address's key state (15.5). The records
// work on kademlia (branch wt/keys: PutRecord, GetRecord, KeyState) gives
// *kademlia.DHT these methods; a build whose DHT lacks them can neither
// publish nor resolve names through the network, and says so
// (errNoRecordDHT) instead of failing later.
type recordDHT interface {
	PutRecord(ctx context.Context, rec []byte, lifetime time.Duration) (int, error)
	recordReader
}

// recordReader reads records and key states: the DHT, or a client's
// onion-routed view of it (node.OnionNetwork).
type recordReader interface {
	GetRecord(ctx context.Context, slot block.ID) (*record.Record, time.Duration, error)
	KeyState(ctx context.Context, address block.ID) (record.KeyState, error)
}

var errNoRecordDHT = errors.New("this build's DHT does not store records at their slots (kademlia PutRecord/GetRecord are not in it)")

// recordsOf is the node's DHT as names use it.
func recordsOf(n *node.Node) (recordDHT, error) {
	if r, ok := any(n.DHT()).(recordDHT); ok {
		return r, nil
	}
	return nil, errNoRecordDHT
}

// nameDHT adapts a recordDHT to naming.DHT. Without one (d nil) every
// call is errNoRecordDHT, so a name's DNS half is still checked first.
type nameDHT struct{ d recordReader }

func (a nameDHT) Record(ctx context.Context, slot block.ID) (*record.Record, error) {
	if a.d == nil {
		return nil, errNoRecordDHT
	}
	r, _, err := a.d.GetRecord(ctx, slot)
	return r, err
}

func (a nameDHT) KeyState(ctx context.Context, address block.ID) (record.KeyState, error) {
	if a.d == nil {
		return record.KeyState{}, errNoRecordDHT
	}
	return a.d.KeyState(ctx, address)
}

// isName tells a human address (alice@example.com) from the other things
// --to takes: fm1… addresses, fm1…@flowmail.invalid, mailboxes with <…>
// and contact names (which hold no @).
func isName(s string) bool {
	s = strings.TrimSpace(s)
	local, domain, ok := strings.Cut(s, "@")
	return ok && local != "" && !strings.ContainsAny(s, "<> ") &&
		!strings.HasPrefix(strings.ToLower(local), identity.AddressPrefix+"1") &&
		!strings.EqualFold(domain, "flowmail.invalid")
}

// The pins of names (docs/PROTOCOL.md 19.5) live beside the contacts, in
// a file of their own: name -> address and the domain keys seen.
const namesFileName = "names.toml"

type namePin struct {
	Address    string   `toml:"address"`
	DomainKeys []string `toml:"domain_keys"`
	Since      string   `toml:"since,omitempty"` // when this binding was pinned (RFC 3339)
}

type nameBook struct {
	Names map[string]namePin `toml:"names"`
	// Own are the user's own names whose certificates `send --as` found
	// and checked, with when (RFC 3339) and for which address.
	Own map[string]ownName `toml:"own,omitempty"`
}

type ownName struct {
	Address string `toml:"address"`
	Checked string `toml:"checked"`
}

// printOwnNames lists, for whoami, the certified names send --as last
// checked for address; a name checked for another address (before a
// move) is not listed.
func printOwnNames(s *streams, home, address string) {
	book, err := loadNames(home)
	if err != nil {
		fmt.Fprintf(s.err, "names:      %v\n", err)
		return
	}
	names := make([]string, 0, len(book.Own))
	for n, o := range book.Own {
		if o.Address == address {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(s.err, "name:       %s (certificate checked %s)\n", n, book.Own[n].Checked)
	}
}

// checkedOwnName records that name's certificate binds address, as
// send --as found it at now.
func checkedOwnName(home, name, address string, now time.Time) error {
	book, err := loadNames(home)
	if err != nil {
		return err
	}
	if book.Own == nil {
		book.Own = map[string]ownName{}
	}
	book.Own[name] = ownName{Address: address, Checked: now.UTC().Format(time.RFC3339)}
	return book.save(home)
}

func namesPath(home string) string { return filepath.Join(home, namesFileName) }

func loadNames(home string) (*nameBook, error) {
	book := &nameBook{Names: map[string]namePin{}}
	b, err := readSmallFile(namesPath(home), maxContactsFile)
	if errors.Is(err, fs.ErrNotExist) {
		return book, nil
	}
	if err != nil {
		return nil, err
	}
	if err := toml.Unmarshal(b, book); err != nil {
		return nil, fmt.Errorf("%s: %w (fix or remove the file)", namesPath(home), err)
	}
	if book.Names == nil {
		book.Names = map[string]namePin{}
	}
	return book, nil
}

func (b *nameBook) save(home string) error {
	data, err := toml.Marshal(b)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	return atomicfile.Write(namesPath(home), data, 0o600)
}

// pin reads name's pin; nil when the name was never resolved.
func (b *nameBook) pin(name string) (*naming.Pin, error) {
	p, ok := b.Names[name]
	if !ok {
		return nil, nil
	}
	addr, err := identity.ParseAddress(p.Address)
	if err != nil {
		return nil, fmt.Errorf("%s: name %s: %w", namesFileName, name, err)
	}
	pin := &naming.Pin{Name: name, Address: addr}
	for _, k := range p.DomainKeys {
		key, err := naming.ParseKey(k)
		if err != nil {
			return nil, fmt.Errorf("%s: name %s: %w", namesFileName, name, err)
		}
		pin.DomainKeys = append(pin.DomainKeys, key)
	}
	return pin, nil
}

func (b *nameBook) set(p naming.Pin, now time.Time) {
	keys := make([]string, len(p.DomainKeys))
	for i, k := range p.DomainKeys {
		keys[i] = naming.FormatKey(k)
	}
	old, ok := b.Names[p.Name]
	since := now.UTC().Format(time.RFC3339)
	if ok && old.Address == identity.FormatAddress(p.Address) {
		since = old.Since
	}
	b.Names[p.Name] = namePin{Address: identity.FormatAddress(p.Address), DomainKeys: keys, Since: since}
}

// resolveName resolves name for sending, against its pin in home: the
// first resolution pins it, a move signed by the pinned identity is
// followed and said, a rebinding by the domain is refused with the
// warning (naming.Decide). Notes and warnings go to w.
func resolveName(ctx context.Context, w io.Writer, home string, r *naming.Resolver, name string, now time.Time) (*naming.Binding, error) {
	norm, err := record.Normalise(name)
	if err != nil {
		return nil, err
	}
	book, err := loadNames(home)
	if err != nil {
		return nil, err
	}
	pin, err := book.pin(norm)
	if err != nil {
		return nil, err
	}
	var seen []naming.Key
	if pin != nil {
		seen = pin.DomainKeys
	}
	b, err := r.Resolve(ctx, norm, now, seen)
	if err != nil {
		return nil, err
	}
	var pinned *record.KeyState
	if pin != nil && pin.Address != b.Address() {
		if st, err := r.DHT.KeyState(ctx, pin.Address); err == nil {
			pinned = &st
		}
	}
	d := naming.Decide(pin, b, pinned)
	if d.Note != "" {
		fmt.Fprintln(w, d.Note)
	}
	if !d.Send {
		return nil, d.Warning
	}
	if d.Warning != nil {
		fmt.Fprintf(w, "warning: %v\n", d.Warning)
	}
	book.set(d.Pin, now)
	if err := book.save(home); err != nil {
		return nil, err
	}
	return b, nil
}

// nameResolver builds the resolver of a command: DNS as the flags say,
// the DHT of the client node n.
func nameResolver(c *cli.Context, n *node.Node) (*naming.Resolver, error) {
	d, err := newDNS(c)
	if err != nil {
		return nil, err
	}
	rd, _ := recordsOf(n) // nil: nameDHT says so when asked
	return &naming.Resolver{DNS: d, DHT: nameDHT{rd}}, nil
}

func namesCommand(s *streams) *cli.Command {
	return &cli.Command{
		Name:   "names",
		Usage:  "the human addresses (alice@example.com) this home has pinned",
		Action: unknownCommand,
		Description: "The first send to a name pins it to the address it resolved to. Later\n" +
			"sends follow a move the identity signed itself, and refuse a name the\n" +
			"domain bound to another address until you accept it here.",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "print every pinned name and its address",
				Action: func(c *cli.Context) error {
					book, err := loadNames(c.String("home"))
					if err != nil {
						return err
					}
					names := make([]string, 0, len(book.Names))
					for n := range book.Names {
						names = append(names, n)
					}
					sort.Strings(names)
					tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
					for _, n := range names {
						p := book.Names[n]
						fmt.Fprintf(tw, "%s\t%s\tsince %s\n", n, p.Address, p.Since)
					}
					return tw.Flush()
				},
			},
			{
				Name:      "accept",
				Usage:     "pin a name to what it resolves to now (after checking a change with the person)",
				ArgsUsage: "NAME",
				Flags:     append(append([]cli.Flag{}, networkFlags()...), dnsFlags()...),
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return errors.New("usage: flowmail names accept alice@example.com")
					}
					n, err := startClient(c.Context, c, s)
					if err != nil {
						return err
					}
					defer n.Close()
					r, err := nameResolver(c, n)
					if err != nil {
						return nameAdvice(err, c.Args().First())
					}
					home := c.String("home")
					book, err := loadNames(home)
					if err != nil {
						return err
					}
					now := time.Now()
					b, err := r.Resolve(c.Context, c.Args().First(), now, nil)
					if err != nil {
						return nameAdvice(err, c.Args().First())
					}
					old, had := book.Names[b.Name]
					book.set(naming.Accept(b), now)
					if err := book.save(home); err != nil {
						return err
					}
					if had && old.Address != identity.FormatAddress(b.Address()) {
						fmt.Fprintf(s.err, "%s: was %s\n", b.Name, old.Address)
					}
					fmt.Fprintf(s.out, "%s\t%s\n", b.Name, identity.FormatAddress(b.Address()))
					return nil
				},
			},
		},
	}
}
