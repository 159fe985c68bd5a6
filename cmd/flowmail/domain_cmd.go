package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/naming"
)

// domainKeyPath is where a domain's key lives in the home directory
// (docs/PROTOCOL.md 10: a signing key file, role 3).
func domainKeyPath(home, domain string) string {
	return filepath.Join(home, "domains", domain+".key")
}

func domainCommand(s *streams) *cli.Command {
	return &cli.Command{
		Name:  "domain",
		Usage: "run a domain's names: its key, its DNS record, its certificates",
		Description: "A domain's owner lets people be reached as user@domain in three steps:\n" +
			"  flowmail domain init example.com     (prints the DNS record to publish)\n" +
			"  publish that line in the example.com zone\n" +
			"  flowmail domain sign alice fm1…      (the user co-signs: see `domain request`)",
		Subcommands: []*cli.Command{domainInitCommand(s), domainCheckCommand(s)},
	}
}

func domainInitCommand(s *streams) *cli.Command {
	return &cli.Command{
		Name:      "init",
		Usage:     "create a domain's key and print the DNS record that publishes it",
		ArgsUsage: "DOMAIN",
		Description: "init makes the domain's signing key, writes it to <home>/domains/DOMAIN.key\n" +
			"protected by a passphrase, and prints one zone-file line on stdout:\n" +
			"  _flowmail.DOMAIN. IN TXT \"v=fm1; k=…\"\n" +
			"Publish it in the domain's DNS; keep the key file (and a copy offline).",
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "no-passphrase", Usage: "store the key unprotected (tests)"},
			&cli.StringFlag{Name: "srv", Usage: "the flowmail `ADDRESS` of the domain's server, if it runs one"},
			&cli.StringFlag{Name: "at", Usage: "`HOST:PORT` where the domain's server listens, if it runs one"},
		}, passphraseFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("domain init takes one argument, the domain: flowmail domain init example.com")
			}
			domain, err := naming.NormaliseDomain(c.Args().First())
			if err != nil {
				return fmt.Errorf("%w (a domain such as example.com; non-ASCII names are written as typed and stored in xn-- form)", err)
			}
			rec := naming.Record{At: c.String("at")}
			if srv := c.String("srv"); srv != "" {
				if rec.Server, err = identity.ParseAddress(srv); err != nil {
					return fmt.Errorf("--srv: %w", err)
				}
			}
			path := domainKeyPath(c.String("home"), domain)
			if _, err := os.Stat(path); err == nil {
				return fmt.Errorf("%s already exists: %s has a key in this home", path, domain)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			rec.Keys = []naming.Key{naming.Key(pub)}
			if err := rec.Check(); err != nil {
				return fmt.Errorf("the record would not be valid (check --srv and --at): %w", err)
			}
			opt := identity.KeyFileOptions{NoPassphrase: c.Bool("no-passphrase")}
			if !opt.NoPassphrase {
				if opt.Passphrase, err = newPassphrase(c, s); err != nil {
					return err
				}
			}
			if err := identity.WriteSigningKeyFile(path, priv, opt); err != nil {
				return err
			}
			fmt.Fprintln(s.out, rec.ZoneLine(domain))
			fmt.Fprintf(s.err, "Created the key of %s in %s (keep a copy offline).\nPublish the line above in the DNS zone of %s.\n", domain, path, domain)
			return nil
		},
	}
}

// dnsFlags are the flags of every command that looks names up in DNS.
func dnsFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:    "dns-server",
			Usage:   "ask this DNS server (`IP[:PORT]`) instead of those of /etc/resolv.conf",
			EnvVars: []string{"FLOWMAIL_DNS_SERVER"},
		},
	}
}

// newDNS builds the DNS client the flags ask for.
func newDNS(c *cli.Context) (*naming.DNS, error) {
	d := &naming.DNS{}
	if v := c.String("dns-server"); v != "" {
		server, err := naming.ParseServer(v)
		if err != nil {
			return nil, fmt.Errorf("--dns-server / FLOWMAIL_DNS_SERVER: %w", err)
		}
		d.Servers = []string{server}
	}
	return d, nil
}

func domainCheckCommand(s *streams) *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "look up a domain's flowmail record in DNS and say what clients will see",
		ArgsUsage: "DOMAIN",
		Description: "check asks DNS for _flowmail.DOMAIN as every client does, prints the record\n" +
			"and whether the answer was DNSSEC-validated, and, when this home holds the\n" +
			"domain's key, whether the record lists it.",
		Flags: dnsFlags(),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("domain check takes one argument, the domain: flowmail domain check example.com")
			}
			d, err := newDNS(c)
			if err != nil {
				return err
			}
			dom, err := d.LookupDomain(c.Context, c.Args().First())
			switch {
			case errors.Is(err, naming.ErrNoRecord):
				return fmt.Errorf("%w\npublish the line `flowmail domain init` printed in the domain's zone (and wait for the DNS to pick it up)", err)
			case errors.Is(err, naming.ErrConflict):
				return fmt.Errorf("%w\nkeep exactly one TXT record starting v=fm1 at that name", err)
			case errors.Is(err, naming.ErrTimeout):
				return fmt.Errorf("%w\nis the DNS server reachable? Try another with --dns-server IP:PORT", err)
			case err != nil:
				return err
			}
			fmt.Fprintf(s.out, "%s\n", dom.Text())
			validated := "no"
			if dom.Validated {
				validated = "yes"
			}
			fmt.Fprintf(s.err, "domain:          %s\nanswered by:     %s\nDNSSEC-validated: %s\n", dom.Name, dom.AnsweredBy, validated)
			for i, k := range dom.Keys {
				fmt.Fprintf(s.err, "key %d:           %s\n", i+1, naming.FormatKey(k))
			}
			if !dom.Server.IsZero() {
				fmt.Fprintf(s.err, "server:          %s\n", identity.FormatAddress(dom.Server))
			}
			if dom.At != "" {
				fmt.Fprintf(s.err, "reachable at:    %s\n", dom.At)
			}
			path := domainKeyPath(c.String("home"), dom.Name)
			if _, err := os.Stat(path); err == nil {
				k, err := identity.ReadSigningKeyFile(path, func() ([]byte, error) { return readPassphrase(c, s, "Passphrase of the domain key: ") })
				if err != nil {
					return err
				}
				if !dom.Lists(naming.Key(k.Public().(ed25519.PublicKey))) {
					return fmt.Errorf("the record does not list this home's key of %s (%s): certificates it signs will not resolve", dom.Name, path)
				}
				fmt.Fprintf(s.err, "this home's key: listed\n")
			}
			return nil
		},
	}
}
