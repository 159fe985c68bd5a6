package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

const keyFileName = "identity.key"

func keyPath(c *cli.Context) string { return filepath.Join(c.String("home"), keyFileName) }

func passphraseFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:    "passphrase-file",
			Usage:   "read the passphrase from the first line of this file instead of asking (or set FLOWMAIL_PASSPHRASE)",
			EnvVars: []string{"FLOWMAIL_PASSPHRASE_FILE"},
		},
	}
}

func initCommand(s *streams) *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "create your identity (keys and address) in the data directory",
		Description: "init creates a signing key and a post-quantum encryption key, writes them to\n" +
			"<home>/identity.key protected by a passphrase, and prints your address.\n" +
			"Give the address to the people who will write to you.",
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "no-passphrase", Usage: "store the key unprotected (tests, throwaway identities)"},
			&cli.IntFlag{Name: "difficulty", Value: block.DefaultDifficulty, Usage: fmt.Sprintf("proof-of-work bits you demand of senders (0-%d; each bit doubles their cost)", block.MaxDifficulty)},
		}, passphraseFlags()...),
		Action: func(c *cli.Context) error {
			path := keyPath(c)
			if _, err := os.Stat(path); err == nil {
				return fmt.Errorf("%s already exists: this home has an identity (see `flowmail whoami`); use another --home for a second one", path)
			}
			d := c.Int("difficulty")
			if d < 0 || d > block.MaxDifficulty {
				return fmt.Errorf("--difficulty %d: choose 0 to %d", d, block.MaxDifficulty)
			}
			opt := identity.KeyFileOptions{NoPassphrase: c.Bool("no-passphrase")}
			if !opt.NoPassphrase {
				p, err := newPassphrase(c, s)
				if err != nil {
					return err
				}
				opt.Passphrase = p
			}
			id, err := identity.Generate(d, time.Now())
			if err != nil {
				return err
			}
			if err := identity.WriteKeyFile(path, id, opt); err != nil {
				return err
			}
			fmt.Fprintf(s.out, "Created identity in %s\nYour address:\n  %s\n", path, id.Address())
			return nil
		},
	}
}

func whoamiCommand(s *streams) *cli.Command {
	return &cli.Command{
		Name:  "whoami",
		Usage: "print your address and identity details",
		Flags: passphraseFlags(),
		Action: func(c *cli.Context) error {
			id, err := loadIdentity(c, s)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.out, "%s\n", id.Address())
			fmt.Fprintf(s.err, "difficulty: %d bits\ncreated:    %s\nkey file:   %s\n",
				id.Difficulty(), id.Created().UTC().Format(time.RFC3339), keyPath(c))
			return nil
		},
	}
}

// loadIdentity reads the user's identity, asking for the passphrase only
// when the key file is protected.
func loadIdentity(c *cli.Context, s *streams) (*identity.Identity, error) {
	path := keyPath(c)
	id, err := identity.ReadKeyFile(path, func() ([]byte, error) { return readPassphrase(c, s, "Passphrase: ") })
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("no identity in %s: run `flowmail init` first (or point --home / FLOWMAIL_HOME at your data directory)", c.String("home"))
	case errors.Is(err, identity.ErrWrongPassphrase):
		return nil, fmt.Errorf("%w: try again; if you lost the passphrase, the identity cannot be recovered", err)
	}
	return id, err
}

// readPassphrase takes the passphrase from --passphrase-file, then
// FLOWMAIL_PASSPHRASE, then the terminal.
func readPassphrase(c *cli.Context, s *streams, prompt string) ([]byte, error) {
	if f := c.String("passphrase-file"); f != "" {
		b, err := readSmallFile(f, 64<<10)
		if err != nil {
			return nil, fmt.Errorf("--passphrase-file: %w", err)
		}
		line, _, _ := bytes.Cut(b, []byte("\n"))
		return bytes.TrimRight(line, "\r"), nil
	}
	if p, ok := os.LookupEnv("FLOWMAIL_PASSPHRASE"); ok {
		return []byte(p), nil
	}
	f, ok := s.in.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, errors.New("a passphrase is needed but stdin is not a terminal: set FLOWMAIL_PASSPHRASE or --passphrase-file (or, for a throwaway identity, init --no-passphrase)")
	}
	fmt.Fprint(s.err, prompt)
	p, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(s.err)
	return p, err
}

func newPassphrase(c *cli.Context, s *streams) ([]byte, error) {
	p, err := readPassphrase(c, s, "New passphrase: ")
	if err != nil {
		return nil, err
	}
	if len(p) == 0 {
		return nil, errors.New("empty passphrase: choose one, or pass --no-passphrase for an unprotected key")
	}
	if f, ok := s.in.(*os.File); ok && term.IsTerminal(int(f.Fd())) && c.String("passphrase-file") == "" {
		again, err := readPassphrase(c, s, "Again: ")
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(p, again) {
			return nil, errors.New("the two passphrases differ; run init again")
		}
	}
	return p, nil
}
