package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/grant"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
	"github.com/flowmail/flowmail/maillist"
	"github.com/flowmail/flowmail/node"
)

// rosterFileName is a list's roster (docs/PROTOCOL.md 17.7), in the
// list's home: a home with one is a mailing list.
const rosterFileName = "list"

func rosterPath(home string) string { return filepath.Join(home, rosterFileName) }

func loadRoster(home string) (*maillist.Roster, error) {
	r, err := maillist.Load(rosterPath(home))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s is not a mailing list's home: run `flowmail --home %s list create NAME` first", home, home)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rosterPath(home), err)
	}
	return r, nil
}

// listCommand is `flowmail list`: mailing lists (spec 17.7). A list is
// an identity of its own, so every subcommand works on the --home of
// the list, not of its owner.
func listCommand(s *streams) *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "run a mailing list: an identity of its own that re-sends its members' posts to every member",
		Description: "A list lives in a home of its own:\n\n" +
			"   flowmail --home ~/lists/friends init --no-passphrase\n" +
			"   flowmail --home ~/lists/friends list create friends\n" +
			"   flowmail --home ~/lists/friends list add bob      (a contact of the list's home, or an address)\n" +
			"   flowmail --home ~/lists/friends list run --watch\n\n" +
			"Each member runs `flowmail allow add LIST-ADDRESS` once: the list then re-sends posts\n" +
			"to them with only the public part of their proof of work. Members post by mailing\n" +
			"the list's address; a post with the subject \"unsubscribe\" takes its sender off.",
		Action: unknownCommand,
		Subcommands: []*cli.Command{
			{
				Name: "create", Usage: "make this home's identity a mailing list", ArgsUsage: "NAME",
				Action: func(c *cli.Context) error { return runListCreate(c, s) },
			},
			{
				Name: "add", Usage: "add a member", ArgsUsage: "NAME|ADDRESS",
				Action: func(c *cli.Context) error { return runListMember(c, s, true) },
			},
			{
				Name: "remove", Usage: "remove a member", ArgsUsage: "NAME|ADDRESS",
				Action: func(c *cli.Context) error { return runListMember(c, s, false) },
			},
			{
				Name: "show", Usage: "print the list's address and members, and whose grant it holds",
				Action: func(c *cli.Context) error { return runListShow(c, s) },
			},
			{
				Name:  "run",
				Usage: "fetch the list's mail and re-send each member's post to every member",
				Flags: append(append([]cli.Flag{
					&cli.BoolFlag{Name: "watch", Usage: "keep running until interrupted"},
					&cli.DurationFlag{Name: "interval", Value: time.Minute, Usage: "time between fetches with --watch"},
				}, networkFlags()...), passphraseFlags()...),
				Action: func(c *cli.Context) error { return runListRun(c, s) },
			},
		},
	}
}

func runListCreate(c *cli.Context, s *streams) error {
	if c.NArg() != 1 {
		return errors.New("usage: flowmail --home LIST-HOME list create NAME")
	}
	home := c.String("home")
	if err := maillist.CheckName(c.Args().First()); err != nil {
		return fmt.Errorf("%w (it goes into the List-Id header)", err)
	}
	pub, err := readPubFile(c)
	if err != nil {
		return fmt.Errorf("a list is an identity of its own, and %s holds none (%w): run `flowmail --home %s init` first", home, err, home)
	}
	if _, err := os.Stat(rosterPath(home)); err == nil {
		return fmt.Errorf("%s is a list already (%s): see `flowmail --home %s list show`", home, rosterPath(home), home)
	}
	if err := (&maillist.Roster{Name: c.Args().First()}).Save(rosterPath(home)); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "list %s created: its address is %s\nadd members with `flowmail --home %s list add NAME|ADDRESS`; each member runs `flowmail allow add %s`\n",
		c.Args().First(), identity.FormatAddress(pub.ID), home, identity.FormatAddress(pub.ID))
	return nil
}

func runListMember(c *cli.Context, s *streams, add bool) error {
	verb := map[bool]string{true: "add", false: "remove"}[add]
	if c.NArg() != 1 {
		return fmt.Errorf("usage: flowmail --home LIST-HOME list %s NAME|ADDRESS", verb)
	}
	home := c.String("home")
	r, err := loadRoster(home)
	if err != nil {
		return err
	}
	who, err := resolveRecipient(home, c.Args().First())
	if err != nil {
		return err
	}
	if !add {
		if !r.Remove(who) {
			return fmt.Errorf("%s is not a member (see `flowmail --home %s list show`)", c.Args().First(), home)
		}
		if err := r.Save(rosterPath(home)); err != nil {
			return err
		}
		fmt.Fprintf(s.out, "removed %s from %s\n", c.Args().First(), r.Name)
		return nil
	}
	if pub, err := readPubFile(c); err == nil && pub.ID == who {
		return errors.New("a list cannot be its own member")
	}
	added, err := r.Add(who)
	if err != nil {
		return err
	}
	if !added {
		return fmt.Errorf("%s is a member already", c.Args().First())
	}
	if err := r.Save(rosterPath(home)); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "added %s to %s\n", c.Args().First(), r.Name)
	if t, err := loadGrants(home); err == nil && t.HeldFrom(who) == nil {
		fmt.Fprintf(s.out, "the list holds no grant from them yet: posts to them cost their full proof of work until they run `flowmail allow add <the list's address>` and the list fetches it\n")
	}
	return nil
}

func runListShow(c *cli.Context, s *streams) error {
	home := c.String("home")
	r, err := loadRoster(home)
	if err != nil {
		return err
	}
	t, err := loadGrants(home)
	if err != nil {
		return err
	}
	book, _ := loadContacts(home)
	addr := "?"
	if pub, err := readPubFile(c); err == nil {
		addr = identity.FormatAddress(pub.ID)
	}
	fmt.Fprintf(s.out, "list %s <%s>, %d member(s)\n", r.Name, addr, len(r.Members))
	w := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	for _, m := range r.Members {
		state := "granted: posts cost the list 2^16 trials"
		if t.HeldFrom(m) == nil {
			state = "no grant: posts cost their full proof of work"
		}
		fmt.Fprintf(w, "  %s\t%s\n", nameOf(book, m), state)
	}
	return w.Flush()
}

// runListRun fetches the list's mail, keeps the grants members sent it,
// and re-sends every other mail from a member (maillist.Relay).
func runListRun(c *cli.Context, s *streams) error {
	ctx := c.Context
	if c.Bool("watch") && c.Duration("interval") <= 0 {
		return fmt.Errorf("--interval %s: give a positive time between fetches, e.g. 30s", c.Duration("interval"))
	}
	home := c.String("home")
	if _, err := loadRoster(home); err != nil {
		return err
	}
	me, err := loadIdentity(c, s)
	if err != nil {
		return err
	}
	st, err := mailbox.OpenState(filepath.Join(home, stateDirName))
	if err != nil {
		return err
	}
	defer st.Close()
	n, err := startClient(ctx, c, s)
	if err != nil {
		return err
	}
	defer n.Close()
	codec, err := mail.NewCodec()
	if err != nil {
		return err
	}
	defer codec.Close()
	book, _ := loadContacts(home)
	var published time.Time
	once := func(ctx context.Context) error {
		if time.Since(published) > 24*time.Hour {
			if err := publishOwnKeys(ctx, c, n, me); err != nil {
				fmt.Fprintf(s.err, "warning: %v (members may not find the list's key)\n", err)
			} else {
				published = time.Now()
			}
		}
		grants, err := loadGrants(home)
		if err != nil {
			return err
		}
		rep, err := delivery.Fetch(ctx, n, codec, me, st, delivery.FetchOptions{
			Maildir: filepath.Join(home, maildirName), Now: time.Now(), KeyLogs: n.DHT(), Grants: grants,
			ShardCache: filepath.Join(home, stateDirName, "shards"),
		})
		if rep == nil {
			return err
		}
		for _, r := range rep.Rejected {
			fmt.Fprintf(s.err, "rejected %v\n", r)
		}
		keepGrants(s, home, me.ID(), rep)
		if grants, err = loadGrants(home); err != nil {
			return err
		}
		for _, d := range rep.Delivered {
			if carriesGrant(d, me.ID()) {
				continue // a member's grant to the list, kept above: not a post
			}
			if err := relayPost(ctx, s, n, codec, me, home, book, grants, d); err != nil {
				return err
			}
		}
		return err
	}
	if !c.Bool("watch") {
		return once(ctx)
	}
	t := time.NewTicker(c.Duration("interval"))
	defer t.Stop()
	for {
		if err := once(ctx); err != nil {
			if ctx.Err() != nil {
				return nil // Ctrl-C is how --watch ends
			}
			fmt.Fprintf(s.err, "list run failed: %v (trying again in %s)\n", err, c.Duration("interval"))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// carriesGrant reports whether d holds a grant from its signer to me.
func carriesGrant(d delivery.Delivered, me block.ID) bool {
	f, err := os.Open(d.Path)
	if err != nil {
		return false
	}
	defer f.Close()
	_, err = grant.FromMessage(f, d.From, me)
	return !errors.Is(err, grant.ErrNoGrants)
}

// relayPost re-sends one post and says what became of it. The roster is
// read again and saved after an unsubscribe, so `list add` and `list
// remove` while the list runs are not lost.
func relayPost(ctx context.Context, s *streams, n *node.Node, codec *mail.Codec, me *identity.Identity, home string, book *contactBook, grants *grant.Table, d delivery.Delivered) error {
	r, err := loadRoster(home)
	if err != nil {
		return err
	}
	// Members resolve through their key logs, as send's recipients do.
	keys := func(ctx context.Context, id block.ID) (*identity.PublicKey, error) {
		k, _, err := delivery.ResolveRecipient(ctx, n, n.DHT(), id)
		return k, err
	}
	// Said once per member, as send says it: a member whose grant the
	// list lacks costs the list that member's full work.
	told := map[block.ID]bool{}
	progress := func(m block.ID, p mail.Progress) {
		if p.Phase == mail.PhaseGrind && p.PoW.Expected > 0 && !told[m] {
			told[m] = true
			fmt.Fprintf(s.err, "re-sending to %s: about 2^%d trials\n", nameOf(book, m), int(math.Round(math.Log2(p.PoW.Expected))))
		}
	}
	rep, err := maillist.Relay(ctx, n, codec, me, r, grants, d, maillist.RelayOptions{Spool: filepath.Join(home, "list-spool"), Now: time.Now(), Lookup: keys, Progress: progress})
	switch {
	case errors.Is(err, maillist.ErrNotMember):
		fmt.Fprintf(s.err, "not re-sent: a mail from %s, who is not a member\n", nameOf(book, d.From))
		return nil
	case errors.Is(err, maillist.ErrPost):
		fmt.Fprintf(s.err, "not re-sent: the post from %s: %v\n", nameOf(book, d.From), err)
		return nil
	case err != nil:
		return err
	}
	if rep.Post.Unsubscribe {
		fmt.Fprintf(s.out, "%s left %s (unsubscribe)\n", nameOf(book, d.From), r.Name)
		return r.Save(rosterPath(home))
	}
	granted, failed := 0, 0
	for _, cp := range rep.Copies {
		if cp.Err != nil {
			failed++
			fmt.Fprintf(s.err, "not re-sent to %s: %v\n", nameOf(book, cp.Member), cp.Err)
		} else if cp.Granted {
			granted++
		}
	}
	fmt.Fprintf(s.out, "post %q from %s re-sent to %d member(s): %d under their grant, %d with their full proof of work\n",
		rep.Post.Subject, nameOf(book, d.From), len(rep.Copies)-failed, granted, len(rep.Copies)-failed-granted)
	return nil
}
