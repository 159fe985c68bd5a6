package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/atomicfile"
	"github.com/flowmail/flowmail/kademlia"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
	"github.com/flowmail/flowmail/record"
	"github.com/flowmail/flowmail/server"
	"github.com/flowmail/flowmail/transport"
)

// delegationFile, in the home, names the server this home delegated to
// and where its service listens: "server ADDRESS" and "at HOST:PORT"
// lines, and "until RFC3339" (the delegation's end; older files have
// none). fetch and status read it.
const delegationFile = "delegation"

type delegation struct {
	Server block.ID
	At     netip.AddrPort
	Until  time.Time // zero when the file does not say
}

func readDelegation(home string) (*delegation, error) {
	b, err := readSmallFile(filepath.Join(home, delegationFile), 4096)
	if err != nil {
		return nil, err
	}
	var d delegation
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch k {
		case "server":
			if d.Server, err = identity.ParseAddress(v); err != nil {
				return nil, fmt.Errorf("%s: %w", delegationFile, err)
			}
		case "at":
			if d.At, err = netip.ParseAddrPort(v); err != nil {
				return nil, fmt.Errorf("%s: %w", delegationFile, err)
			}
		case "until":
			if d.Until, err = time.Parse(time.RFC3339, v); err != nil {
				return nil, fmt.Errorf("%s: %w", delegationFile, err)
			}
		}
	}
	if d.Server.IsZero() || !d.At.IsValid() {
		return nil, fmt.Errorf("%s: want a server line and an at line", delegationFile)
	}
	return &d, nil
}

func writeDelegation(home string, d *delegation) error {
	b := fmt.Appendf(nil, "server %s\nat %s\n", identity.FormatAddress(d.Server), d.At)
	if !d.Until.IsZero() {
		b = fmt.Appendf(b, "until %s\n", d.Until.UTC().Format(time.RFC3339))
	}
	return atomicfile.Write(filepath.Join(home, delegationFile), b, 0o600)
}

// heldClient is a client of the held-mail service at d (the account
// service's listener, section 21.5).
func heldClient(c *cli.Context, d *delegation) (*server.Client, error) {
	return accountClient(c, transport.Contact{ID: d.Server, Addr: d.At})
}

func delegateCommand(s *streams) *cli.Command {
	return &cli.Command{
		Name:      "delegate",
		Usage:     "let your domain's server collect and hold your mail while you are offline",
		ArgsUsage: "SERVER-ADDRESS|NAME@DOMAIN",
		Description: "delegate signs a delegation certificate (docs/PROTOCOL.md 15.2) naming the server's\n" +
			"node and stores it in the network. The server then collects your mail as it arrives\n" +
			"and keeps it past the network's 30 days until a fetch of yours has it; it gets no key\n" +
			"that opens it. fetch then asks the server first, then the network (for what the server missed).\n\n" +
			"Give the server's node address and --server HOST:PORT (its service, what `flowmail server`\n" +
			"prints), or your NAME@DOMAIN (or DOMAIN) when the domain's DNS record names its server.\n" +
			"--revoke ends the delegation: the server stops collecting.",
		Flags: append(append([]cli.Flag{
			&cli.StringFlag{Name: "server", Usage: "the server's service, HOST:PORT (`flowmail server --account-listen`)", EnvVars: []string{"FLOWMAIL_SERVER"}},
			&cli.IntFlag{Name: "days", Usage: "the delegation lasts `N` days (1 to 30; default 30)"},
			&cli.StringFlag{Name: "until", Usage: "end of the delegation, RFC 3339 (instead of --days; at most 30 days from now)"},
			&cli.BoolFlag{Name: "revoke", Usage: "revoke the delegation this home made"},
		}, networkFlags()...), append(passphraseFlags(), dnsFlags()...)...),
		Action: func(c *cli.Context) error { return runDelegate(c, s) },
	}
}

// delegationEnd is when a new delegation ends: --days or --until, at
// most record.MaxDelegation from now (30 days when neither is given).
func delegationEnd(c *cli.Context, now time.Time) (time.Time, error) {
	limit := int(record.MaxDelegation.Hours() / 24)
	if c.IsSet("days") && c.IsSet("until") {
		return time.Time{}, errors.New("give --days or --until, not both")
	}
	until := now.Add(record.MaxDelegation)
	if c.IsSet("days") {
		days := c.Int("days")
		if days < 1 || days > limit {
			return time.Time{}, fmt.Errorf("--days %d: give 1 to %d", days, limit)
		}
		return now.Add(time.Duration(days) * 24 * time.Hour), nil
	}
	if u := c.String("until"); u != "" {
		var err error
		if until, err = time.Parse(time.RFC3339, u); err != nil {
			return time.Time{}, fmt.Errorf("--until %q: want RFC 3339, e.g. 2026-12-31T00:00:00Z: %w", u, err)
		}
	}
	if !until.After(now) || until.Sub(now) > record.MaxDelegation {
		return time.Time{}, fmt.Errorf("--until %s: give a time within the next %d days", until.UTC().Format(time.RFC3339), limit)
	}
	return until, nil
}

func runDelegate(c *cli.Context, s *streams) error {
	ctx := c.Context
	home := c.String("home")
	now := time.Now()
	until, err := delegationEnd(c, now)
	if err != nil && !c.Bool("revoke") {
		return err
	}
	me, err := loadIdentity(c, s)
	if err != nil {
		return err
	}
	n, err := startClient(ctx, c, s)
	if err != nil {
		return err
	}
	defer n.Close()
	ks, err := n.DHT().KeyState(ctx, me.ID())
	if err != nil {
		return fmt.Errorf("reading your key log: %w", err)
	}
	slot := record.DelegationSlot(me.ID(), ks.SignKey)
	old, _, err := n.DHT().GetRecord(ctx, slot)
	if err != nil && !errors.Is(err, record.ErrNotFound) && !errors.Is(err, kademlia.ErrNotFound) {
		return fmt.Errorf("reading your current delegation: %w", err)
	}
	var v record.Version
	var delegates []block.ID
	if old != nil && old.Delegation != nil {
		v = record.Version{Seq: old.Delegation.Version.Seq + 1, Prev: block.Sum(old.Bytes())}
		if old.Delegation.Version.Revoked {
			return errors.New("your delegation slot was revoked for good; rotate your key (`flowmail key rotate`) to delegate again")
		}
	} else {
		v.Seq = 1
	}

	var d *delegation
	if c.Bool("revoke") {
		if old == nil || old.Delegation == nil {
			return errors.New("nothing to revoke: no delegation signed by your current key is in the network")
		}
		// A revocation keeps the dates of what it ends, so it outlives
		// it at every node (15.2).
		v.NotBefore, v.NotAfter, v.Revoked = old.Delegation.Version.NotBefore, old.Delegation.Version.NotAfter, true
		delegates = old.Delegation.Delegates
		d, _ = readDelegation(home)
	} else {
		if c.NArg() != 1 {
			return errors.New("give the server: flowmail delegate SERVER-ADDRESS --server HOST:PORT, or flowmail delegate NAME@DOMAIN")
		}
		if d, err = delegationTarget(c, c.Args().First()); err != nil {
			return err
		}
		v.NotBefore, v.NotAfter = uint64(now.Unix()), uint64(until.Unix())
		delegates = []block.ID{d.Server}
	}
	rec, err := record.SignDelegation(record.Delegation{Owner: me.ID(), Version: v, Delegates: delegates}, me)
	if err != nil {
		return err
	}
	if _, err := n.DHT().PutRecord(ctx, rec.Bytes(), block.MaxLifetime); err != nil {
		return fmt.Errorf("storing the delegation: %w", err)
	}
	if c.Bool("revoke") {
		fmt.Fprintln(s.out, "delegation revoked")
	} else {
		d.Until = time.Unix(int64(v.NotAfter), 0)
		if err := writeDelegation(home, d); err != nil {
			return err
		}
		fmt.Fprintf(s.out, "delegated to %s at %s until %s\n", identity.FormatAddress(d.Server), d.At, time.Unix(int64(v.NotAfter), 0).UTC().Format(time.RFC3339))
	}
	if d == nil {
		return nil
	}
	// Tell the server now, so it checks the delegation and starts (or
	// stops) at once; it would find out at its next HOLD anyway.
	cl, err := heldClient(c, d)
	if err != nil {
		return err
	}
	defer cl.Transport.Close()
	st, err := cl.Hold(ctx, me.ID())
	if err != nil {
		fmt.Fprintf(s.err, "warning: the server at %s did not answer (%v); it is told at your next fetch\n", d.At, err)
		return nil
	}
	fmt.Fprintf(s.err, "server: %s (%s)\n", st.State, st.Text)
	if c.Bool("revoke") {
		if err := os.Remove(filepath.Join(home, delegationFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	if st.State != server.HoldCollecting {
		return fmt.Errorf("the server does not collect your mail: %s", st.Text)
	}
	return nil
}

// delegationTarget reads the server from an address and --server, or from
// the DNS record of a NAME@DOMAIN or DOMAIN.
func delegationTarget(c *cli.Context, arg string) (*delegation, error) {
	if addr, err := identity.ParseAddress(arg); err == nil {
		if c.String("server") == "" {
			return nil, errors.New("give the server's service too: --server HOST:PORT (what `flowmail server` prints)")
		}
		at, err := netip.ParseAddrPort(c.String("server"))
		if err != nil {
			return nil, fmt.Errorf("--server %q: want IP:port: %w", c.String("server"), err)
		}
		return &delegation{Server: addr, At: at}, nil
	}
	domain := arg
	if _, dom, ok := strings.Cut(arg, "@"); ok {
		domain = dom
	}
	dom, err := lookupDomain(c, domain)
	if err != nil {
		return nil, err
	}
	ct, err := domainServer(c, dom)
	if err != nil {
		return nil, err
	}
	return &delegation{Server: ct.ID, At: ct.Addr}, nil
}

// fetchDelegated fetches me's mail through the server this home
// delegated to, then from the network (server.FetchHeld).
func fetchDelegated(ctx context.Context, c *cli.Context, s *streams, d *delegation, dht server.Fallback, codec *mail.Codec, me *identity.Identity, st *mailbox.State, opt delivery.FetchOptions) (*delivery.FetchReport, error) {
	cl, err := heldClient(c, d)
	if err != nil {
		return nil, err
	}
	defer cl.Transport.Close()
	got, err := server.FetchHeld(ctx, cl, d.Server, dht, codec, me, st, opt)
	switch {
	case got == nil:
		return nil, err
	case got.FromServer:
		fmt.Fprintf(s.err, "fetched from your server %s and the network", d.At)
		if got.Confirmed > 0 {
			fmt.Fprintf(s.err, " (the server may now drop %d mails)", got.Confirmed)
		}
		fmt.Fprintln(s.err)
		if got.ConfirmErr != nil {
			fmt.Fprintf(s.err, "warning: %v\n", got.ConfirmErr)
		}
		if got.NetworkErr != nil {
			fmt.Fprintf(s.err, "warning: the network did not answer after your server (%v): mail your server does not hold waits there for the next fetch\n", got.NetworkErr)
		}
	default:
		fmt.Fprintf(s.err, "your server at %s did not serve your mail (%v); fetched from the network\n", d.At, got.ServerErr)
	}
	return got.FetchReport, err
}

// printDelegation says where this home's mail is held, for whoami.
func printDelegation(s *streams, home string) {
	if d, err := readDelegation(home); err == nil {
		fmt.Fprintf(s.err, "delegated: %s\n", d)
	}
}

func (d *delegation) String() string {
	t := fmt.Sprintf("to %s at %s", identity.FormatAddress(d.Server), d.At)
	if !d.Until.IsZero() {
		t += " until " + d.Until.UTC().Format(time.RFC3339)
	}
	return t
}
