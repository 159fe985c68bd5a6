package main

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/grant"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/node"
)

// grantsFileName holds the grants this identity issued and those it
// holds (docs/PROTOCOL.md 10.4), in the home directory.
const grantsFileName = "grants"

func grantsPath(home string) string { return filepath.Join(home, grantsFileName) }

func loadGrants(home string) (*grant.Table, error) {
	t, err := grant.Load(grantsPath(home))
	if err != nil {
		return nil, fmt.Errorf("%s: %w (move it away to start with no grants)", grantsPath(home), err)
	}
	return t, nil
}

// allowCommand is `flowmail allow`: allow-lists (spec 17). The same
// actions are `contacts allow`, `contacts disallow` and `contacts grants`.
func allowCommand(s *streams) *cli.Command {
	return &cli.Command{
		Name:   "allow",
		Usage:  "let known senders and mailing lists reach you without the proof of work",
		Action: unknownCommand,
		Subcommands: []*cli.Command{
			allowAddCommand(s, "add"),
			allowListCommand(s, "list"),
			allowRemoveCommand(s, "remove"),
		},
	}
}

func allowAddCommand(s *streams, name string) *cli.Command {
	return &cli.Command{
		Name:      name,
		Usage:     "give a contact (or a mailing list's address) a grant, sent to them in a mail",
		ArgsUsage: "NAME|ADDRESS",
		Description: "Once they have fetched it, their mail to you needs only the public part of your\n" +
			"proof of work (16 bits, milliseconds) instead of all of it. Nobody else can tell.",
		Flags: networkFlags(),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("usage: flowmail allow %s NAME|ADDRESS", name)
			}
			return runAllow(c, s, c.Args().First())
		},
	}
}

func allowListCommand(s *streams, name string) *cli.Command {
	return &cli.Command{
		Name:  name,
		Usage: "print the grants you gave and those you hold",
		Action: func(c *cli.Context) error {
			home := c.String("home")
			t, err := loadGrants(home)
			if err != nil {
				return err
			}
			book, _ := loadContacts(home)
			w := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
			for _, x := range t.List() {
				state := "allowed since " + x.Grant.Issued.UTC().Format(time.DateOnly)
				if !x.Withdrawn.IsZero() {
					state = "withdrawn on " + x.Withdrawn.UTC().Format(time.DateOnly)
				}
				fmt.Fprintf(w, "you allow\t%s\t%s\n", nameOf(book, x.Grant.Grantee), state)
			}
			for _, g := range t.Held() {
				fmt.Fprintf(w, "allows you\t%s\tsince %s\n", nameOf(book, g.Granter), g.Issued.UTC().Format(time.DateOnly))
			}
			return w.Flush()
		},
	}
}

func allowRemoveCommand(s *streams, name string) *cli.Command {
	return &cli.Command{
		Name:      name,
		Usage:     "withdraw the grant you gave a contact",
		ArgsUsage: "NAME|ADDRESS",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("usage: flowmail allow %s NAME|ADDRESS", name)
			}
			home := c.String("home")
			who, err := resolveRecipient(home, c.Args().First())
			if err != nil {
				return err
			}
			t, err := loadGrants(home)
			if err != nil {
				return err
			}
			if t.Withdraw(who, time.Now()) == 0 {
				return fmt.Errorf("you gave %s no grant (see flowmail allow list)", c.Args().First())
			}
			if err := t.Save(grantsPath(home)); err != nil {
				return err
			}
			fmt.Fprintf(s.out, "withdrew the grant of %s: their mail needs the full proof of work again (they are not told)\n", c.Args().First())
			return nil
		},
	}
}

func nameOf(book *contactBook, id block.ID) string {
	addr := identity.FormatAddress(id)
	if book != nil {
		for n, a := range book.Contacts {
			if a == addr {
				return n + " <" + addr + ">"
			}
		}
	}
	return addr
}

// runAllow issues a grant to who and sends it to them in a mail (spec
// 17.2). The grant is saved before the mail goes: a failed send can be
// run again and sends the same grant.
func runAllow(c *cli.Context, s *streams, who string) error {
	ctx := c.Context
	me, err := loadIdentity(c, s)
	if err != nil {
		return err
	}
	home := c.String("home")
	to, err := resolveRecipient(home, who)
	if err != nil {
		return err
	}
	if to == me.ID() {
		return errors.New("you need no grant to write to yourself")
	}
	t, err := loadGrants(home)
	if err != nil {
		return err
	}
	g, err := t.Issue(me.ID(), to, time.Now(), crand.Reader)
	if err != nil {
		return err
	}
	if err := t.Save(grantsPath(home)); err != nil {
		return err
	}
	n, err := startClient(ctx, c, s)
	if err != nil {
		return err
	}
	defer n.Close()
	if err := publishOwnPubkey(ctx, n, me); err != nil {
		fmt.Fprintf(s.err, "warning: %v (they may not find your key)\n", err)
	}
	if err := sendGrant(ctx, n, me, to, g); err != nil {
		return fmt.Errorf("sending the grant to %s: %w (the grant is kept: run the same command again to send it)", who, err)
	}
	fmt.Fprintf(s.out, "allowed %s: once they fetch the grant just sent, their mail to you skips the proof of work\n", who)
	return nil
}

// sendGrant mails g to its grantee, with the full proof of work.
func sendGrant(ctx context.Context, n *node.Node, me *identity.Identity, to block.ID, g *grant.Grant) error {
	k, err := delivery.LookupPubkey(ctx, n, to)
	if errors.Is(err, node.ErrNotFound) {
		return fmt.Errorf("they have no published key in the network (%w): ask them to run `flowmail publish` once", err)
	}
	if err != nil {
		return err
	}
	msg, err := mail.Compose(&mail.Message{
		From: mail.Mailbox{Address: me.ID()}, To: []mail.Mailbox{{Address: to}},
		Subject: "You may write to me without the proof of work",
		Text:    "This mail carries a grant: your flowmail fetch keeps it, and your mail to me then skips the proof of work.\n",
		Date:    time.Now(), Attachments: []mail.Attachment{g.Attachment()},
	}, crand.Reader)
	if err != nil {
		return err
	}
	codec, err := mail.NewCodec()
	if err != nil {
		return err
	}
	defer codec.Close()
	_, err = delivery.Send(ctx, n, codec, mail.BuildInput{Sender: me, Recipients: []*identity.PublicKey{k}, Message: bytes.NewReader(msg), Size: int64(len(msg)), Now: time.Now()}, delivery.SendOptions{})
	return err
}

// keepGrants looks for grants in the mails a fetch delivered and keeps
// those from their signer to me (spec 17.2), saying so.
func keepGrants(s *streams, home string, me block.ID, rep *delivery.FetchReport) {
	if rep == nil {
		return
	}
	var t *grant.Table
	book, _ := loadContacts(home)
	for _, d := range rep.Delivered {
		f, err := os.Open(d.Path)
		if err != nil {
			continue
		}
		gs, err := grant.FromMessage(f, d.From, me)
		f.Close()
		if errors.Is(err, grant.ErrNoGrants) {
			continue
		}
		if err != nil {
			fmt.Fprintf(s.err, "ignored a grant in %s: %v\n", d.Path, err)
			continue
		}
		if t == nil {
			if t, err = loadGrants(home); err != nil {
				fmt.Fprintf(s.err, "warning: %v: the grant in %s is not kept\n", err, d.Path)
				return
			}
		}
		for _, g := range gs {
			t.Hold(g)
			fmt.Fprintf(s.out, "%s allows you to write without the proof of work\n", nameOf(book, g.Granter))
		}
	}
	if t != nil {
		if err := t.Save(grantsPath(home)); err != nil {
			fmt.Fprintf(s.err, "warning: saving the grants you received: %v\n", err)
		}
	}
}

// sendClaims returns the grant claims for a mail to keys, and the names
// of the recipients they cover, for the sender to say so.
func sendClaims(home string, keys []*identity.PublicKey, names []string) ([]*mail.GrantClaim, []string, error) {
	t, err := loadGrants(home)
	if err != nil {
		return nil, nil, err
	}
	claims := t.Claims(keys)
	var covered []string
	for i, c := range claims {
		if c != nil {
			covered = append(covered, names[i])
		}
	}
	return claims, covered, nil
}

func grantNote(covered []string) string {
	return fmt.Sprintf("%s allowed you: no proof of work beyond the first %d bits", strings.Join(covered, ", "), mail.RouteBits)
}
