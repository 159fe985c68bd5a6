package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/flowmail/flowmail/account"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/node"
	"github.com/flowmail/flowmail/server"
	"github.com/flowmail/flowmail/transport"
)

// MinPasswordLen: the server limits online guesses, and whoever steals
// its OPRF seed with the records still pays an Argon2id per guess; a
// short password falls to either anyway.
const MinPasswordLen = 10

// accountFlags say where the account service is and how to read the
// account password.
func accountFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "server", Usage: "the account service, HOST:PORT (its `flowmail server --account-listen`)", EnvVars: []string{"FLOWMAIL_SERVER"}},
		&cli.StringFlag{Name: "server-id", Usage: "the server's node ID, to refuse any other at that address", EnvVars: []string{"FLOWMAIL_SERVER_ID"}},
		&cli.StringFlag{Name: "password-file", Usage: "read the account password from the first line of this file instead of asking (or set FLOWMAIL_ACCOUNT_PASSWORD)", EnvVars: []string{"FLOWMAIL_ACCOUNT_PASSWORD_FILE"}},
		&cli.StringFlag{Name: "network", Value: node.DefaultNetwork, Usage: "network name the server is on", EnvVars: []string{"FLOWMAIL_NETWORK"}},
		requestTimeoutFlag(),
		// The key file's own scrypt cost; lower only for tests (under
		// the race detector scrypt runs many times slower).
		&cli.IntFlag{Name: "scrypt-log-n", Hidden: true, Usage: "log2 of scrypt's N for the key file written (default identity.DefaultScryptLogN)"},
	}
}

// keyFileOptions protects a key file with the account password.
func keyFileOptions(c *cli.Context, pw []byte) identity.KeyFileOptions {
	return identity.KeyFileOptions{Passphrase: pw, ScryptLogN: c.Int("scrypt-log-n")}
}

func accountCommand(s *streams) *cli.Command {
	register := func(verb string) cli.ActionFunc {
		return func(c *cli.Context) error { return runRegister(c, s, verb) }
	}
	return &cli.Command{
		Name:   "account",
		Usage:  "password login from other devices: register your identity with your domain's server",
		Action: unknownCommand,
		Subcommands: []*cli.Command{
			{
				Name:  "create",
				Usage: "register this identity with a server, under a password",
				Description: "create runs OPAQUE with the server and uploads your identity sealed under a key only your\n" +
					"password gives: the server never sees the password or the key. Then, on any device,\n" +
					"`flowmail login ADDRESS --server HOST:PORT` with the password gets the identity back.",
				Flags:  append(accountFlags(), passphraseFlags()...),
				Action: register("created"),
			},
			{
				Name:        "password",
				Usage:       "change the account password (the identity stays the same)",
				Description: "password registers again with the new password and re-seals the same identity.\nIt needs this device's identity (its passphrase), not the old password.",
				Flags:       append(accountFlags(), passphraseFlags()...),
				Action:      register("password changed"),
			},
		},
	}
}

func loginCommand(s *streams) *cli.Command {
	return &cli.Command{
		Name:      "login",
		Usage:     "get your identity onto this device with your account password",
		ArgsUsage: "ADDRESS",
		Description: "login runs OPAQUE with the server, downloads your sealed identity and opens it here.\n" +
			"It writes <home>/identity.key protected by the account password: later commands\n" +
			"(send, fetch) ask for that password as the passphrase.",
		Flags: accountFlags(),
		Action: func(c *cli.Context) error {
			if err := parseTrailingFlags(c); err != nil {
				return err
			}
			if c.NArg() == 0 {
				return errors.New("give your address: flowmail login ADDRESS --server HOST:PORT")
			}
			addr, err := identity.ParseAddress(c.Args().First())
			if err != nil {
				return err
			}
			acct := identity.FormatAddress(addr)
			path := keyPath(c)
			if _, err := os.Stat(path); err == nil {
				return fmt.Errorf("%s already exists: this home has an identity; log in with another --home", path)
			}
			pw, err := readAccountPassword(c, s, "Account password: ", false)
			if err != nil {
				return err
			}
			var keyFile []byte
			if err := withAccountClient(c, func(ctx context.Context, cl *server.Client) (err error) {
				keyFile, err = cl.Login(ctx, acct, pw)
				return err
			}); err != nil {
				return err
			}
			id, err := identity.DecodeKeyFile(keyFile, func() ([]byte, error) { return pw, nil })
			if err != nil {
				return fmt.Errorf("the identity the server returned does not open with the password: %w", err)
			}
			if id.Address() != acct {
				return fmt.Errorf("the server returned the identity of %s, not %s", id.Address(), acct)
			}
			if err := identity.WriteKeyFile(path, id, keyFileOptions(c, pw)); err != nil {
				return err
			}
			if err := writePubFile(c, id); err != nil {
				return err
			}
			fmt.Fprintf(s.out, "Logged in as\n  %s\nThe identity is in %s, protected by your account password.\n", acct, path)
			return nil
		},
	}
}

// parseTrailingFlags reads the flags written after login's address
// (`flowmail login ADDRESS --server HOST:PORT`), which urfave/cli leaves
// as arguments.
func parseTrailingFlags(c *cli.Context) error {
	rest := c.Args().Tail()
	if len(rest) == 0 {
		return nil
	}
	set := flag.NewFlagSet(c.Command.Name, flag.ContinueOnError)
	set.SetOutput(io.Discard)
	for _, f := range c.Command.Flags {
		if err := f.Apply(set); err != nil {
			return err
		}
	}
	if err := set.Parse(rest); err != nil {
		return fmt.Errorf("after the address: %w", err)
	}
	if set.NArg() > 0 {
		return fmt.Errorf("one address only: %q is extra", set.Arg(0))
	}
	var err error
	set.Visit(func(f *flag.Flag) {
		if e := c.Set(f.Name, f.Value.String()); e != nil && err == nil {
			err = e
		}
	})
	return err
}

// runRegister registers (or re-registers) the home's identity.
func runRegister(c *cli.Context, s *streams, verb string) error {
	id, err := loadIdentity(c, s)
	if err != nil {
		return err
	}
	pw, err := readAccountPassword(c, s, "New account password: ", true)
	if err != nil {
		return err
	}
	keyFile, err := passwordKeyFile(c, id, pw)
	if err != nil {
		return err
	}
	if err := withAccountClient(c, func(ctx context.Context, cl *server.Client) error {
		return cl.Register(ctx, id, pw, keyFile)
	}); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "Account %s for\n  %s\nOn another device: flowmail login %s --server %s\n", verb, id.Address(), id.Address(), c.String("server"))
	return nil
}

// passwordKeyFile is id's key file protected by the account password:
// what is sealed for the server. A device that logs in keeps it as is,
// so the password unlocks the identity there; the key never touches a
// disk unprotected.
func passwordKeyFile(c *cli.Context, id *identity.Identity, pw []byte) ([]byte, error) {
	dir, err := os.MkdirTemp(c.String("home"), ".account-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, keyFileName)
	if err := identity.WriteKeyFile(path, id, keyFileOptions(c, pw)); err != nil {
		return nil, err
	}
	return readSmallFile(path, account.MaxIdentitySize)
}

// accountClient dials nothing yet: it opens a client-mode QUIC endpoint
// with a throwaway node key, aimed at --server.
func accountClient(c *cli.Context) (*server.Client, error) {
	if c.String("server") == "" {
		return nil, errors.New("give the account service's address: --server HOST:PORT (what `flowmail server` prints)")
	}
	ap, err := netip.ParseAddrPort(c.String("server"))
	if err != nil {
		return nil, fmt.Errorf("--server %q: want IP:port: %w", c.String("server"), err)
	}
	contact := transport.Contact{Addr: ap}
	if sid := c.String("server-id"); sid != "" {
		ct, err := node.ParseContact(sid + "@" + ap.String())
		if err != nil {
			return nil, fmt.Errorf("--server-id: %w", err)
		}
		contact = ct
	}
	key, err := identity.Generate(0, time.Now())
	if err != nil {
		return nil, err
	}
	listen := "0.0.0.0:0"
	if ap.Addr().IsLoopback() {
		listen = "127.0.0.1:0"
	}
	d := c.Duration("request-timeout")
	tr, err := transport.ListenQUIC(c.Context, transport.QUICConfig{
		Identity: key, Network: c.String("network"), ListenAddr: listen, Client: true,
		DialTimeout: d, HandshakeTimeout: d, RequestTimeout: d,
	})
	if err != nil {
		return nil, err
	}
	return &server.Client{Transport: tr, Server: contact}, nil
}

// withAccountClient runs fn with a client of --server, within a deadline
// for a whole registration or login (a few requests, and Argon2id between
// them), and turns its error into advice.
func withAccountClient(c *cli.Context, fn func(context.Context, *server.Client) error) error {
	cl, err := accountClient(c)
	if err != nil {
		return err
	}
	defer cl.Transport.Close()
	d := c.Duration("request-timeout")
	if d == 0 {
		d = transport.DefaultRequestTimeout
	}
	ctx, cancel := context.WithTimeout(c.Context, 4*d+time.Minute)
	defer cancel()
	if err := fn(ctx, cl); err != nil {
		return accountAdvice(c, err)
	}
	return nil
}

// accountAdvice says what to do about an error of the account service.
func accountAdvice(c *cli.Context, err error) error {
	srv := c.String("server")
	switch {
	case errors.Is(err, account.ErrAuthFailed):
		return fmt.Errorf("wrong password (or %s is not the server you registered with): %w; the server allows %d attempts an hour per account", srv, err, server.LoginsPerAccount)
	case errors.Is(err, server.ErrRateLimited):
		return fmt.Errorf("%w: wait as the server says, then try again", err)
	case errors.Is(err, server.ErrForbidden):
		return fmt.Errorf("%w: an account can be created or changed only with its identity's key", err)
	case errors.Is(err, account.ErrUnsupportedKSF):
		return fmt.Errorf("%w: update flowmail", err)
	case errors.Is(err, transport.ErrUnreachable), errors.Is(err, transport.ErrWrongNetwork):
		return fmt.Errorf("no answer from the account service at --server %s (is `flowmail server` running there, on --network %q?): %w", srv, c.String("network"), err)
	case errors.Is(err, transport.ErrWrongPeer):
		return fmt.Errorf("the server at %s is not --server-id %s: %w", srv, c.String("server-id"), err)
	}
	return err
}

// readAccountPassword takes the account password from --password-file,
// then FLOWMAIL_ACCOUNT_PASSWORD, then the terminal (twice when new).
func readAccountPassword(c *cli.Context, s *streams, prompt string, isNew bool) ([]byte, error) {
	var pw []byte
	if f := c.String("password-file"); f != "" {
		b, err := readSmallFile(f, 64<<10)
		if err != nil {
			return nil, fmt.Errorf("--password-file: %w", err)
		}
		pw, _, _ = bytes.Cut(b, []byte("\n"))
		pw = bytes.TrimRight(pw, "\r")
	} else if p, ok := os.LookupEnv("FLOWMAIL_ACCOUNT_PASSWORD"); ok {
		pw = []byte(p)
	} else {
		f, ok := s.in.(*os.File)
		if !ok || !term.IsTerminal(int(f.Fd())) {
			return nil, errors.New("the account password is needed but stdin is not a terminal: set FLOWMAIL_ACCOUNT_PASSWORD or --password-file")
		}
		fmt.Fprint(s.err, prompt)
		p, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(s.err)
		if err != nil {
			return nil, err
		}
		if isNew {
			fmt.Fprint(s.err, "Again: ")
			again, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(s.err)
			if err != nil {
				return nil, err
			}
			if !bytes.Equal(p, again) {
				return nil, errors.New("the two passwords differ; try again")
			}
		}
		pw = p
	}
	if isNew && len(pw) < MinPasswordLen {
		return nil, fmt.Errorf("the account password has %d characters: choose at least %d", len(pw), MinPasswordLen)
	}
	return pw, nil
}
