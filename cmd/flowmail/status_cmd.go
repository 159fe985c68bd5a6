package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"

	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/server"
	"github.com/flowmail/flowmail/transport"
)

// statusCommand shows a user's state in one place: the address, the
// names checked for it, and the delegation: to which server, until
// when, and what that server says it holds (HOLD_STATUS, docs/PROTOCOL.md
// 21.5). `node status` is the node's.
func statusCommand(s *streams) *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show your address, your names, and whether a server holds your mail (your delegation)",
		Description: "status reads this home (no passphrase) and, when you delegated (`flowmail delegate`),\n" +
			"asks that server what it holds for you: whether it collects, until when, how many mails\n" +
			"and bytes of your quota. The node's status is `flowmail node status`.",
		Flags:  networkFlags(),
		Action: func(c *cli.Context) error { return runStatus(c, s) },
	}
}

func runStatus(c *cli.Context, s *streams) error {
	if _, err := os.Stat(keyPath(c)); err != nil {
		return noIdentity(c, err)
	}
	pub, err := readPubFile(c)
	if err != nil {
		return fmt.Errorf("%w (run `flowmail whoami` once to write it)", err)
	}
	home := c.String("home")
	address := identity.FormatAddress(pub.Owner)
	fmt.Fprintf(s.out, "address:    %s\n", address)
	printOwnNames(&streams{in: s.in, out: s.out, err: s.out}, home, address)
	d, err := readDelegation(home)
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintln(s.out, "delegation: none (your mail waits in the network, 30 days at most; `flowmail delegate NAME@DOMAIN` has your domain's server hold it)")
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(s.out, "delegation: %s\n", d)
	cl, err := heldClient(c, d)
	if err != nil {
		return err
	}
	defer cl.Transport.Close()
	ctx, cancel := context.WithTimeout(c.Context, 2*max(c.Duration("request-timeout"), transport.DefaultRequestTimeout))
	defer cancel()
	st, err := cl.Hold(ctx, pub.Owner)
	if err != nil {
		fmt.Fprintf(s.out, "server:     no answer (%v): fetch gets your mail from the network meanwhile\n", err)
		return nil
	}
	fmt.Fprintf(s.out, "server:     %s: %s\n", st.State, st.Text)
	if st.NotAfter != 0 {
		end := time.Unix(int64(st.NotAfter), 0)
		fmt.Fprintf(s.out, "until:      %s (%s)\n", end.UTC().Format(time.RFC3339), untilText(end, time.Now()))
	}
	quota := ""
	if st.QuotaBytes > 0 {
		quota = " of a " + humanize.IBytes(st.QuotaBytes) + " quota"
	}
	fmt.Fprintf(s.out, "held:       %d mails, %s%s\n", st.Mails, humanize.IBytes(st.Bytes), quota)
	if st.State != server.HoldCollecting {
		fmt.Fprintln(s.out, "note:       the server is not collecting your mail now; `flowmail delegate` renews the delegation")
	}
	return nil
}

// untilText says how far end is from now, in days or hours.
func untilText(end, now time.Time) string {
	d := end.Sub(now)
	switch {
	case d <= 0:
		return "ended"
	case d >= 48*time.Hour:
		return fmt.Sprintf("in %d days", int(d/(24*time.Hour)))
	}
	return fmt.Sprintf("in %d hours", int(d/time.Hour))
}
