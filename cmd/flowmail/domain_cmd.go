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
		Subcommands: []*cli.Command{domainInitCommand(s)},
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
