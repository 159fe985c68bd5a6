package main

import (
	"bytes"
	crand "crypto/rand"
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
	"github.com/flowmail/flowmail/internal/atomicfile"
	"github.com/flowmail/flowmail/record"
)

const (
	keyFileName = "identity.key"
	// pubFileName holds the identity's pubkey block in the clear, so
	// whoami prints the address without the passphrase. The key file
	// seals everything; this file is rewritten from it whenever the
	// key is unlocked.
	pubFileName = "identity.pub"
)

func keyPath(c *cli.Context) string { return filepath.Join(c.String("home"), keyFileName) }
func pubPath(c *cli.Context) string { return filepath.Join(c.String("home"), pubFileName) }

// writePubFile keeps identity.pub in step with the key.
func writePubFile(c *cli.Context, id *identity.Identity) error {
	path := pubPath(c)
	if old, err := readSmallFile(path, block.MaxBlockSize); err == nil && bytes.Equal(old, id.Public().Block) {
		return nil
	}
	return atomicfile.Write(path, id.Public().Block, 0o644)
}

// readPubFile reads the public part written by writePubFile.
func readPubFile(c *cli.Context) (*identity.PublicKey, error) {
	b, err := readSmallFile(pubPath(c), block.MaxBlockSize)
	if err != nil {
		return nil, err
	}
	return identity.ParsePubkey(b)
}

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
			"<home>/identity.key protected by a passphrase, and the next key your identity\n" +
			"commits to (what `flowmail key rotate` takes) to <home>/next.key: back that one up\n" +
			"offline. It prints your address; give it to the people who will write to you.\n" +
			"With --publish it also stores your pubkey block and key log in the network\n" +
			"(publish, send and fetch do it otherwise).",
		Flags: append(append([]cli.Flag{
			&cli.BoolFlag{Name: "no-passphrase", Usage: "store the key unprotected (tests, throwaway identities)"},
			&cli.IntFlag{Name: "difficulty", Value: block.DefaultDifficulty, Usage: fmt.Sprintf("proof-of-work bits you demand of senders (0-%d; each bit doubles their cost)", block.MaxDifficulty)},
			&cli.BoolFlag{Name: "publish", Usage: "publish the new identity's key log now (needs the network flags)"},
		}, passphraseFlags()...), networkFlags()...),
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
			id, next, err := identity.New(d, time.Now(), crand.Reader)
			if err != nil {
				return err
			}
			log, err := record.NewKeyLog(id.Public().Block)
			if err != nil {
				return err
			}
			// The next key first: an identity.key without it could never
			// rotate, and init refuses to run twice.
			if err := os.MkdirAll(c.String("home"), 0o700); err != nil {
				return err
			}
			if err := identity.WriteNextKeyFile(nextKeyPath(c), next, opt); err != nil {
				return err
			}
			if err := identity.WriteKeyFile(path, id, opt); err != nil {
				return err
			}
			if err := writeKeyLog(c, log); err != nil {
				return err
			}
			if err := writePubFile(c, id); err != nil {
				return err
			}
			fmt.Fprintf(s.out, "Created identity in %s\nYour address:\n  %s\n", path, id.Address())
			fmt.Fprintf(s.err, "Your next key (for `flowmail key rotate`) is in %s: copy it somewhere offline.\n", nextKeyPath(c))
			if !c.Bool("publish") {
				return nil
			}
			n, err := startClient(c.Context, c, s)
			if err != nil {
				return fmt.Errorf("the identity is created but not published (%w): run `flowmail publish` when you are online", err)
			}
			defer n.Close()
			if err := publishOwnKeys(c.Context, c, n, id); err != nil {
				return fmt.Errorf("the identity is created but not published (%w): run `flowmail publish` again", err)
			}
			fmt.Fprintln(s.out, "Published.")
			return nil
		},
	}
}

func whoamiCommand(s *streams) *cli.Command {
	return &cli.Command{
		Name:  "whoami",
		Usage: "print your address and identity details",
		Description: "whoami reads the public half of your identity (<home>/identity.pub) and needs no\n" +
			"passphrase. A home made before that file existed is unlocked once to write it.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "with", Usage: "also print the safety code you share with this contact or address (compare it out of band)"},
		}, passphraseFlags()...),
		Action: func(c *cli.Context) error {
			if _, err := os.Stat(keyPath(c)); err != nil {
				return noIdentity(c, err)
			}
			if log, err := readKeyLog(c); err == nil {
				return whoamiFromLog(c, s, log)
			}
			pub, err := readPubFile(c)
			if err != nil {
				// No public file yet (or a damaged one): unlock the key
				// once, which writes it.
				id, lerr := loadIdentity(c, s)
				if lerr != nil {
					return lerr
				}
				pub = id.Public()
			}
			fmt.Fprintf(s.out, "%s\n", pub.Address())
			fmt.Fprintf(s.err, "difficulty: %d bits\ncreated:    %s\nkey file:   %s\n",
				pub.Difficulty, pub.Created.UTC().Format(time.RFC3339), keyPath(c))
			printOwnNames(s, c.String("home"), pub.Address())
			printDelegation(s, c.String("home"))
			return printSafetyCode(c, s, pub.Owner)
		},
	}
}

// whoamiFromLog prints what the owner's key log says: the address (which
// rotations keep), the generation and the state.
func whoamiFromLog(c *cli.Context, s *streams, log *record.Record) error {
	st, err := log.KeyLog.State()
	if err != nil {
		return fmt.Errorf("%s: %w", keyLogPath(c), err)
	}
	fmt.Fprintf(s.out, "%s\n", identity.FormatAddress(st.Address))
	state := "active"
	switch {
	case st.Revoked:
		state = "REVOKED (nobody can send to this address)"
	case st.Moved:
		state = "moved to " + identity.FormatAddress(st.MovedTo)
	}
	fmt.Fprintf(s.err, "state:      %s\ngeneration: %d (%d rotations left)\ndifficulty: %d bits\ncreated:    %s\nkey file:   %s\n",
		state, st.Generation, block.MaxRotations-st.Generation, st.Inception.Difficulty,
		st.Inception.Created.UTC().Format(time.RFC3339), keyPath(c))
	printOwnNames(s, c.String("home"), identity.FormatAddress(st.Address))
	printDelegation(s, c.String("home"))
	return printSafetyCode(c, s, st.Address)
}

// printSafetyCode prints, for --with, the safety code of me and that
// contact (docs/PROTOCOL.md 15.6).
func printSafetyCode(c *cli.Context, s *streams, me block.ID) error {
	with := c.String("with")
	if with == "" {
		return nil
	}
	other, err := resolveRecipient(c.String("home"), with)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.out, "safety code with %s:\n  %s\n", with, record.SafetyCode(me, other))
	return nil
}

func noIdentity(c *cli.Context, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no identity in %s: run `flowmail init` first (or point --home / FLOWMAIL_HOME at your data directory)", c.String("home"))
	}
	return err
}

// loadIdentity reads the user's identity, asking for the passphrase only
// when the key file is protected, and keeps identity.pub in step.
func loadIdentity(c *cli.Context, s *streams) (*identity.Identity, error) {
	path := keyPath(c)
	id, err := identity.ReadKeyFile(path, func() ([]byte, error) { return readPassphrase(c, s, "Passphrase: ") })
	var pfe *passphraseFileError
	switch {
	case errors.As(err, &pfe):
		// Before the check for a missing file: a missing passphrase
		// file is not a missing identity.
		return nil, fmt.Errorf("--passphrase-file: %w", pfe.err)
	case errors.Is(err, fs.ErrNotExist):
		return nil, noIdentity(c, err)
	case errors.Is(err, identity.ErrWrongPassphrase):
		return nil, fmt.Errorf("%w: try again; if you lost the passphrase, the identity cannot be recovered", err)
	case err != nil:
		return nil, err
	}
	if err := writePubFile(c, id); err != nil {
		fmt.Fprintf(s.err, "warning: writing %s: %v (whoami will ask for the passphrase)\n", pubPath(c), err)
	}
	return id, nil
}

// readPassphrase takes the passphrase from --passphrase-file, then
// FLOWMAIL_PASSPHRASE, then the terminal.
func readPassphrase(c *cli.Context, s *streams, prompt string) ([]byte, error) {
	if f := c.String("passphrase-file"); f != "" {
		b, err := readSmallFile(f, 64<<10)
		if err != nil {
			return nil, &passphraseFileError{err}
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

// passphraseFileError: the --passphrase-file could not be read.
type passphraseFileError struct{ err error }

func (e *passphraseFileError) Error() string { return "reading the passphrase file: " + e.err.Error() }
func (e *passphraseFileError) Unwrap() error { return e.err }
