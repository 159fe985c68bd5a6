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
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/flowmail/flowmail/account"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/naming"
	"github.com/flowmail/flowmail/node"
	"github.com/flowmail/flowmail/server"
	"github.com/flowmail/flowmail/transport"
)

// MinPasswordLen: the server limits online guesses, and whoever steals
// its OPRF seed with the records still pays an Argon2id per guess; a
// short password falls to either anyway.
const MinPasswordLen = 10

// accountFlags say where the account service is, how to reach the
// network and DNS (a NAME@DOMAIN is resolved through them), and how to
// read the account password.
func accountFlags() []cli.Flag {
	fl := []cli.Flag{
		&cli.StringFlag{Name: "server", Usage: "the account service, IP:PORT (its `flowmail server --account-listen`; default: the at= of your domain's DNS record)", EnvVars: []string{"FLOWMAIL_SERVER"}},
		&cli.StringFlag{Name: "server-id", Usage: "the server's node ID, to refuse any other at that address (default: the srv= of your domain's DNS record)", EnvVars: []string{"FLOWMAIL_SERVER_ID"}},
		&cli.StringFlag{Name: "password-file", Usage: "read the account password from the first line of this file instead of asking (or set FLOWMAIL_ACCOUNT_PASSWORD)", EnvVars: []string{"FLOWMAIL_ACCOUNT_PASSWORD_FILE"}},
		// The key file's own scrypt cost; lower only for tests (under
		// the race detector scrypt runs many times slower).
		&cli.IntFlag{Name: "scrypt-log-n", Hidden: true, Usage: "log2 of scrypt's N for the key file written (default identity.DefaultScryptLogN)"},
	}
	return append(append(fl, networkFlags()...), dnsFlags()...)
}

// accountKeyFileOptions protects a key file with the account password.
func accountKeyFileOptions(c *cli.Context, pw []byte) identity.KeyFileOptions {
	return identity.KeyFileOptions{Passphrase: pw, ScryptLogN: c.Int("scrypt-log-n")}
}

// argon2Flags raise the account's key stretching (docs/PROTOCOL.md 18.2).
func argon2Flags() []cli.Flag {
	return []cli.Flag{
		&cli.UintFlag{Name: "argon2-memory", Usage: fmt.Sprintf("Argon2id memory in `MiB` for this account's password (%d to %d; default: the account's current, at least %d)",
			account.MinArgon2MemoryKiB>>10, account.MaxArgon2MemoryKiB>>10, account.DefaultKSF.MemoryKiB>>10)},
		&cli.UintFlag{Name: "argon2-time", Usage: fmt.Sprintf("Argon2id passes (%d to %d; default: the account's current, at least %d)",
			account.MinArgon2Time, account.MaxArgon2Time, account.DefaultKSF.Time)},
	}
}

// argon2Params reads --argon2-memory and --argon2-time: zero when
// neither is given (keep the account's, at least the default).
func argon2Params(c *cli.Context) (account.KSFParams, error) {
	if !c.IsSet("argon2-memory") && !c.IsSet("argon2-time") {
		return account.KSFParams{}, nil
	}
	k := account.DefaultKSF
	if c.IsSet("argon2-memory") {
		mib := c.Uint("argon2-memory")
		if mib > account.MaxArgon2MemoryKiB>>10 {
			mib = account.MaxArgon2MemoryKiB>>10 + 1 // out of bounds, said below
		}
		k.MemoryKiB = uint32(mib) << 10
	}
	if c.IsSet("argon2-time") {
		k.Time = uint32(min(c.Uint("argon2-time"), account.MaxArgon2Time+1))
	}
	if err := k.Check(); err != nil {
		return k, fmt.Errorf("--argon2-memory %d MiB, --argon2-time %d: give %d to %d MiB and %d to %d passes: %w", k.MemoryKiB>>10, k.Time,
			account.MinArgon2MemoryKiB>>10, account.MaxArgon2MemoryKiB>>10, account.MinArgon2Time, account.MaxArgon2Time, err)
	}
	return k, nil
}

func accountCommand(s *streams) *cli.Command {
	register := func(verb string) cli.ActionFunc {
		return func(c *cli.Context) error { return runRegister(c, s, verb) }
	}
	flags := func() []cli.Flag { return append(append(accountFlags(), argon2Flags()...), passphraseFlags()...) }
	return &cli.Command{
		Name:   "account",
		Usage:  "password login from other devices: register your identity with your domain's server",
		Action: unknownCommand,
		Subcommands: []*cli.Command{
			{
				Name:      "create",
				Usage:     "register this identity with a server, under a password",
				ArgsUsage: "[NAME@DOMAIN|DOMAIN]",
				Description: "create runs OPAQUE with the server and uploads your identity sealed under a key only your\n" +
					"password gives: the server never sees the password or the key. Then, on any device,\n" +
					"`flowmail login NAME@DOMAIN` (or ADDRESS --server IP:PORT) with the password gets the identity back.\n" +
					"The server is the one your domain's DNS record names (give NAME@DOMAIN or DOMAIN), or --server.",
				Flags:  flags(),
				Action: register("created"),
			},
			{
				Name:      "password",
				Usage:     "change the account password (the identity stays the same)",
				ArgsUsage: "[NAME@DOMAIN|DOMAIN]",
				Description: "password registers again with the new password and re-seals the same identity.\nIt needs this device's identity (its passphrase), not the old password.\n" +
					"--argon2-memory and --argon2-time raise the password's stretching; without them the account keeps its own.",
				Flags:  flags(),
				Action: register("password changed"),
			},
		},
	}
}

func loginCommand(s *streams) *cli.Command {
	return &cli.Command{
		Name:      "login",
		Usage:     "get your identity onto this device with your account password",
		ArgsUsage: "NAME@DOMAIN|ADDRESS",
		Description: "login runs OPAQUE with the server, downloads your sealed identity and opens it here.\n" +
			"Give your name (alice@example.com): its certificate gives your address and the domain's DNS\n" +
			"record its server. Or give your fm1… address and --server IP:PORT.\n" +
			"It writes <home>/identity.key protected by the account password: later commands\n" +
			"(send, fetch) ask for that password as the passphrase.",
		Flags:  accountFlags(),
		Action: func(c *cli.Context) error { return runLogin(c, s) },
	}
}

func runLogin(c *cli.Context, s *streams) error {
	if err := parseTrailingFlags(c); err != nil {
		return err
	}
	if c.NArg() == 0 {
		return errors.New("give your name or address: flowmail login NAME@DOMAIN, or flowmail login ADDRESS --server IP:PORT")
	}
	path := keyPath(c)
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s already exists: this home has an identity; log in with another --home", path)
	}
	t, err := loginTarget(c, s, c.Args().First())
	if err != nil {
		return err
	}
	pw, err := readAccountPassword(c, s, "Account password: ", false)
	if err != nil {
		return err
	}
	var keyFile []byte
	if err := withAccountClient(c, t.Server, func(ctx context.Context, cl *server.Client) (err error) {
		keyFile, err = cl.Login(ctx, t.Account, pw)
		return err
	}); err != nil {
		return err
	}
	id, err := identity.DecodeKeyFile(keyFile, func() ([]byte, error) { return pw, nil })
	if err != nil {
		return fmt.Errorf("the identity the server returned does not open with the password: %w", err)
	}
	if id.Address() != t.Account {
		return fmt.Errorf("the server returned the identity of %s, not %s", id.Address(), t.Account)
	}
	if err := identity.WriteKeyFile(path, id, accountKeyFileOptions(c, pw)); err != nil {
		return err
	}
	if err := writePubFile(c, id); err != nil {
		return err
	}
	if t.Name != "" {
		// whoami shows the name, as after a send --as that checked it.
		if err := checkedOwnName(c.String("home"), t.Name, t.Account, time.Now()); err != nil {
			return err
		}
	}
	fmt.Fprintf(s.out, "Logged in as\n  %s\nThe identity is in %s, protected by your account password.\n", t.Account, path)
	return nil
}

// accountTarget is an account and the service that holds it.
type accountTarget struct {
	Account string // the canonical text of the address
	Name    string // the name it was found by; "" when given an address
	Server  transport.Contact
}

// loginTarget reads login's argument: an address (the service is
// --server), or a name, resolved through DNS and the network (19.4) to
// the address its certificate binds, the service being the one the
// domain's record names (srv= and at=) unless --server is given.
func loginTarget(c *cli.Context, s *streams, arg string) (*accountTarget, error) {
	if !isName(arg) {
		addr, err := identity.ParseAddress(arg)
		if err != nil {
			return nil, err
		}
		ct, err := serverContact(c)
		if err != nil {
			return nil, err
		}
		if !ct.Addr.IsValid() {
			return nil, errors.New("give the account service's address: --server IP:PORT (what `flowmail server` prints), or log in with your NAME@DOMAIN when your domain's DNS record names its server")
		}
		return &accountTarget{Account: identity.FormatAddress(addr), Server: ct}, nil
	}
	n, err := startClient(c.Context, c, s)
	if err != nil {
		return nil, fmt.Errorf("%s is a name: resolving it needs the network: %w", arg, err)
	}
	defer n.Close()
	r, err := nameResolver(c, n)
	if err != nil {
		return nil, err
	}
	b, err := r.Resolve(c.Context, arg, time.Now(), nil)
	if err != nil {
		return nil, nameAdvice(err, arg)
	}
	ct, err := domainServer(c, b.Domain)
	if err != nil {
		return nil, err
	}
	return &accountTarget{Account: identity.FormatAddress(b.Address()), Name: b.Name, Server: ct}, nil
}

// registerServer is the service account create and password talk to:
// --server, or the one the DNS record of the domain of their optional
// NAME@DOMAIN or DOMAIN argument names.
func registerServer(c *cli.Context) (transport.Contact, error) {
	if err := parseTrailingFlags(c); err != nil {
		return transport.Contact{}, err
	}
	if c.NArg() == 0 {
		ct, err := serverContact(c)
		if err == nil && !ct.Addr.IsValid() {
			err = errors.New("give your domain (flowmail account create NAME@DOMAIN, when its DNS record names its server) or the account service: --server IP:PORT (what `flowmail server` prints)")
		}
		return ct, err
	}
	arg := c.Args().First()
	domain := arg
	if _, d, ok := strings.Cut(arg, "@"); ok {
		domain = d
	}
	dom, err := lookupDomain(c, domain)
	if err != nil {
		return transport.Contact{}, err
	}
	return domainServer(c, dom)
}

// lookupDomain reads domain's flowmail record from DNS as the flags say.
func lookupDomain(c *cli.Context, domain string) (*naming.Domain, error) {
	d, err := newDNS(c)
	if err != nil {
		return nil, err
	}
	dom, err := d.LookupDomain(c.Context, domain)
	if err != nil {
		return nil, nameAdvice(fmt.Errorf("looking up %s's server: %w", domain, err), "@"+domain)
	}
	return dom, nil
}

// domainServer is the server dom's record names: its node ID (srv=), at
// its address (at=, or --server when given). The transport refuses a
// peer with another ID, so a wrong address fails rather than talks to
// someone else.
func domainServer(c *cli.Context, dom *naming.Domain) (transport.Contact, error) {
	if dom.Server.IsZero() || (dom.At == "" && c.String("server") == "") {
		return transport.Contact{}, fmt.Errorf("%s's DNS record names no server (srv= and at=); give the server yourself (its node address, and --server IP:PORT)", dom.Name)
	}
	ct, err := serverContact(c)
	if err != nil {
		return ct, err
	}
	if !ct.Addr.IsValid() {
		if ct.Addr, err = netip.ParseAddrPort(dom.At); err != nil {
			return ct, fmt.Errorf("%s's server is at %q: only IP:port is supported here; give --server IP:PORT", dom.Name, dom.At)
		}
	}
	if ct.ID.IsZero() {
		ct.ID = dom.Server
	}
	return ct, nil
}

// serverContact reads --server and --server-id; the contact's address is
// invalid when --server is not given.
func serverContact(c *cli.Context) (transport.Contact, error) {
	var ct transport.Contact
	if v := c.String("server"); v != "" {
		ap, err := netip.ParseAddrPort(v)
		if err != nil {
			return ct, fmt.Errorf("--server %q: want IP:port: %w", v, err)
		}
		ct.Addr = ap
	}
	if v := c.String("server-id"); v != "" {
		id, err := identity.ParseAddress(v)
		if err != nil {
			return ct, fmt.Errorf("--server-id: %w", err)
		}
		ct.ID = id
	}
	return ct, nil
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
	srv, err := registerServer(c)
	if err != nil {
		return err
	}
	ksf, err := argon2Params(c)
	if err != nil {
		return err
	}
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
	if err := withAccountClient(c, srv, func(ctx context.Context, cl *server.Client) (err error) {
		ksf, err = cl.Register(ctx, id, pw, keyFile, ksf)
		return err
	}); err != nil {
		return err
	}
	how := id.Address() + " --server " + srv.Addr.String()
	if c.NArg() > 0 && isName(c.Args().First()) {
		how = c.Args().First()
	}
	fmt.Fprintf(s.out, "Account %s for\n  %s\nPassword stretched with %s.\nOn another device: flowmail login %s\n", verb, id.Address(), ksf, how)
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
	if err := identity.WriteKeyFile(path, id, accountKeyFileOptions(c, pw)); err != nil {
		return nil, err
	}
	return readSmallFile(path, account.MaxIdentitySize)
}

// accountNetwork is the network the account service is on: --network,
// else the --testnet's, else the default one.
func accountNetwork(c *cli.Context) (string, error) {
	if v := c.String("network"); v != "" {
		return v, nil
	}
	if dir := c.String("testnet"); dir != "" {
		_, name, err := readTestnet(dir)
		return name, err
	}
	return node.DefaultNetwork, nil
}

// accountClient dials nothing yet: it opens a client-mode QUIC endpoint
// with a throwaway node key, aimed at srv.
func accountClient(c *cli.Context, srv transport.Contact) (*server.Client, error) {
	network, err := accountNetwork(c)
	if err != nil {
		return nil, err
	}
	key, err := identity.Generate(0, time.Now())
	if err != nil {
		return nil, err
	}
	listen := "0.0.0.0:0"
	if srv.Addr.Addr().IsLoopback() {
		listen = "127.0.0.1:0"
	}
	d := c.Duration("request-timeout")
	tr, err := transport.ListenQUIC(c.Context, transport.QUICConfig{
		Identity: key, Network: network, ListenAddr: listen, Client: true,
		DialTimeout: d, HandshakeTimeout: d, RequestTimeout: d,
	})
	if err != nil {
		return nil, err
	}
	return &server.Client{Transport: tr, Server: srv}, nil
}

// withAccountClient runs fn with a client of srv, within a deadline for
// a whole registration or login (a few requests, and Argon2id between
// them), and turns its error into advice.
func withAccountClient(c *cli.Context, srv transport.Contact, fn func(context.Context, *server.Client) error) error {
	cl, err := accountClient(c, srv)
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
		return accountAdvice(srv, err)
	}
	return nil
}

// accountAdvice says what to do about an error of the account service.
func accountAdvice(ct transport.Contact, err error) error {
	srv := ct.Addr.String()
	switch {
	case errors.Is(err, account.ErrAuthFailed):
		return fmt.Errorf("wrong password (or %s is not the server you registered with): %w; the server allows %d attempts an hour per account", srv, err, server.LoginsPerAccount)
	case errors.Is(err, server.ErrRateLimited):
		return fmt.Errorf("%w: wait as the server says, then try again", err)
	case errors.Is(err, server.ErrForbidden):
		return fmt.Errorf("%w: an account can be created or changed only with its identity's key", err)
	case errors.Is(err, account.ErrUnsupportedKSF):
		return fmt.Errorf("%w: update flowmail", err)
	case errors.Is(err, account.ErrKSFBounds):
		return fmt.Errorf("%w: the server at %s asks for key stretching this program refuses to run (too weak, or more memory or time than any server may ask of a device); do not use that server, and tell its operator", err, srv)
	case errors.Is(err, transport.ErrUnreachable), errors.Is(err, transport.ErrWrongNetwork):
		return fmt.Errorf("no answer from the account service at %s (is `flowmail server` running there, on this --network?): %w", srv, err)
	case errors.Is(err, transport.ErrWrongPeer):
		return fmt.Errorf("the server at %s is not %s (--server-id, or the srv= of your domain's DNS record): %w", srv, identity.FormatAddress(ct.ID), err)
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
