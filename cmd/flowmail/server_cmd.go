package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/flowmail/flowmail/server"
)

const defaultAccountListen = "0.0.0.0:4411"

// serverFlags are the node's, and the account service's address.
func serverFlags() []cli.Flag {
	return append(append(nodeFlags(),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "account-listen", Value: defaultAccountListen, Usage: "UDP address of the account service (password login and held mail; QUIC, the node's key)", EnvVars: []string{"FLOWMAIL_ACCOUNT_LISTEN"}}),
		altsrc.NewInt64Flag(&cli.Int64Flag{Name: "held-quota", Value: server.DefaultHeldQuota, Usage: "bytes of mail held per delegating user; past it new mail stays in the network until it expires", EnvVars: []string{"FLOWMAIL_HELD_QUOTA"}}),
	), gatewayFlags()...)
}

func serverCommand(s *streams) *cli.Command {
	flags := serverFlags()
	return &cli.Command{
		Name:  "server",
		Usage: "run a domain's server: a full node and the password-login service",
		Description: "A server is a full node (the flags, config file and admin endpoint of `flowmail node`)\n" +
			"plus the account service on --account-listen: users who registered with\n" +
			"`flowmail account create --server HOST:PORT` log in from any device with\n" +
			"`flowmail login ADDRESS --server HOST:PORT`. The server never sees their password or key.\n" +
			"Its secrets are <data-dir>/account.key (back it up apart from <data-dir>/accounts).\n\n" +
			"With --gateway-listen it also runs the domain's SMTP gateway (docs/PROTOCOL.md 20):\n" +
			"SMTP for user@DOMAIN in, sealed to the user at once; users' mail to legacy addresses\n" +
			"out, DKIM-signed. Users who run `flowmail delegate` have their mail collected and\n" +
			"held in <data-dir>/held (sealed: the server has no key that opens it), at most\n" +
			"--held-quota bytes each, until their fetch confirms it (section 21).",
		Flags:  flags,
		Before: loadConfig(flags),
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return unknownCommand(c)
			}
			if c.Bool("client") {
				return errors.New("--client: a server stores for others and holds accounts; run `flowmail node --client` for a client")
			}
			if err := checkGatewayFlags(c); err != nil {
				return err
			}
			log, err := newLogger(c, s.err)
			if err != nil {
				return err
			}
			cfg, err := nodeConfig(c, log)
			if err != nil {
				return err
			}
			srv, err := server.Start(c.Context, server.Config{Node: cfg, AccountListen: c.String("account-listen"), HeldQuota: c.Int64("held-quota")})
			if err != nil {
				return startAdvice(err)
			}
			n := srv.Node()
			fmt.Fprintf(s.out, "server node %s listening on %s (network %q, %d peers)\n", n.ID().Short(), n.Addr(), c.String("network"), n.DHT().Size())
			fmt.Fprintf(s.out, "account service on %s: users log in with --server %s\n", srv.AccountAddr(), srv.AccountAddr())
			fmt.Fprintf(s.out, "held mail: users delegate with `flowmail delegate %s --server %s`\n", n.Identity().Address(), srv.AccountAddr())
			gw, err := startGateway(c.Context, c, n, cfg.DataDir, log)
			if err != nil {
				srv.Close()
				return err
			}
			stop := srv.Close
			if gw != nil {
				fmt.Fprintf(s.out, "SMTP gateway for %s on %s\n", gw.Name(), gw.Addr())
				stop = func() error { return errors.Join(gw.Close(), srv.Close()) }
			}
			return serveUntilDone(c.Context, s, log, n, cfg.DataDir, stop)
		},
	}
}
