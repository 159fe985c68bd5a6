package main

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/atomicfile"
	"github.com/flowmail/flowmail/record"
)

const (
	// nextKeyFileName holds the key the identity committed to: what
	// rotating (and revoking without the current key) takes. Best kept
	// offline; `key rotate --next-key` reads it from elsewhere.
	nextKeyFileName = "next.key"
	// keyLogFileName holds the identity's own key log (a kind 1 record,
	// docs/PROTOCOL.md 15.1): the owner's copy, published by publish,
	// send and fetch, extended by key rotate and key revoke.
	keyLogFileName = "keylog.rec"
)

func nextKeyPath(c *cli.Context) string {
	if p := c.String("next-key"); p != "" {
		return p
	}
	return filepath.Join(c.String("home"), nextKeyFileName)
}

func keyLogPath(c *cli.Context) string { return filepath.Join(c.String("home"), keyLogFileName) }

// readKeyLog reads the owner's key log; fs.ErrNotExist for a home made
// before key logs.
func readKeyLog(c *cli.Context) (*record.Record, error) {
	b, err := readSmallFile(keyLogPath(c), block.MaxRecordSize)
	if err != nil {
		return nil, err
	}
	r, err := record.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyLogPath(c), err)
	}
	if r.Kind != record.KindKeyLog {
		return nil, fmt.Errorf("%s holds a %v record, not a key log", keyLogPath(c), r.Kind)
	}
	return r, nil
}

// ownKeyLog is the key log of id: the file, or for an identity that never
// rotated and has none yet, its inception block alone.
func ownKeyLog(c *cli.Context, id *identity.Identity) (*record.Record, error) {
	r, err := readKeyLog(c)
	if errors.Is(err, fs.ErrNotExist) && id.Generation() == 0 {
		return record.NewKeyLog(id.Public().Block)
	}
	if err != nil {
		return nil, err
	}
	if r.KeyLog.Address() != id.ID() {
		return nil, fmt.Errorf("%s is the key log of %s, not of this identity %s: restore the right file", keyLogPath(c), identity.FormatAddress(r.KeyLog.Address()), id.Address())
	}
	return r, nil
}

func writeKeyLog(c *cli.Context, r *record.Record) error {
	return atomicfile.Write(keyLogPath(c), r.Bytes(), 0o644)
}

// keyFileOptions protects new key files as the identity's key file is
// protected, with the same passphrase.
func keyFileOptions(c *cli.Context, s *streams) (identity.KeyFileOptions, error) {
	b, err := readSmallFile(keyPath(c), 1<<20)
	if err != nil {
		return identity.KeyFileOptions{}, noIdentity(c, err)
	}
	if !identity.IsProtected(b) {
		return identity.KeyFileOptions{NoPassphrase: true}, nil
	}
	p, err := readPassphrase(c, s, "Passphrase: ")
	if err != nil {
		return identity.KeyFileOptions{}, err
	}
	return identity.KeyFileOptions{Passphrase: p}, nil
}

// publishKeyLog stores the owner's key log at its slot (15.4).
func publishKeyLog(ctx context.Context, n delivery.Network, log *record.Record) error {
	// A record's Put goes to its slot (kademlia DHT.Put hands it to
	// PutRecord), directly or through an onion exit.
	if err := n.Put(ctx, log.Bytes(), block.MaxLifetime); err != nil {
		return fmt.Errorf("publishing your key log: %w", err)
	}
	return nil
}

func keyCommand(s *streams) *cli.Command {
	nextFlag := &cli.StringFlag{Name: "next-key", Usage: "the next key file, if you keep it elsewhere than <home>/next.key"}
	return &cli.Command{
		Name:   "key",
		Usage:  "rotate, revoke or move your key; your address stays (rotate) or ends (revoke, move)",
		Action: unknownCommand,
		Subcommands: []*cli.Command{
			{
				Name:  "rotate",
				Usage: "replace your keys with the ones you committed to, keeping your address",
				Description: "rotate reveals the next key your identity committed to (next.key), makes it your\n" +
					"signing key, commits to a fresh next key, and publishes the rotation in your key\n" +
					"log. Senders then seal to the new key; mail sealed to the old one still opens for\n" +
					fmt.Sprintf("%s. Someone who stole only identity.key cannot rotate.", identity.GracePeriod),
				Flags:  append(append([]cli.Flag{nextFlag}, networkFlags()...), passphraseFlags()...),
				Action: func(c *cli.Context) error { return runRotate(c, s) },
			},
			{
				Name:  "revoke",
				Usage: "end your identity for good: senders are refused, your mail is refused",
				Description: "revoke publishes the terminal event of your key log, signed by your current key,\n" +
					"or with --with-next by your committed next key (when the current one is lost).\n" +
					"Nodes that see it refuse every later record for your address. It cannot be undone.",
				Flags: append(append([]cli.Flag{
					nextFlag,
					&cli.BoolFlag{Name: "with-next", Usage: "sign with the next key file instead of the current key"},
					&cli.BoolFlag{Name: "yes", Usage: "confirm: revocation is final"},
				}, networkFlags()...), passphraseFlags()...),
				Action: func(c *cli.Context) error { return runRevoke(c, s) },
			},
			{
				Name:  "move",
				Usage: "tell everyone your identity moved to another address (final)",
				Description: "move publishes the terminal \"moved to\" event of your key log, signed by your\n" +
					"committed next key and by the new identity (--to-home: the data directory that\n" +
					"holds it), so nobody can move you, and nobody is moved onto an address without its\n" +
					"owner. Senders are told the new address. It cannot be undone.",
				Flags: append(append([]cli.Flag{
					nextFlag,
					&cli.StringFlag{Name: "to-home", Usage: "data directory of the new identity (its identity.key signs too)"},
					&cli.BoolFlag{Name: "yes", Usage: "confirm: the move is final"},
				}, networkFlags()...), passphraseFlags()...),
				Action: func(c *cli.Context) error { return runMove(c, s) },
			},
		},
	}
}

func runRotate(c *cli.Context, s *streams) error {
	id, err := loadIdentity(c, s)
	if err != nil {
		return err
	}
	next, err := identity.ReadNextKeyFile(nextKeyPath(c), func() ([]byte, error) { return readPassphrase(c, s, "Passphrase of the next key: ") })
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no next key at %s: rotating takes the key your identity committed to (give its file with --next-key); without it you can still revoke (flowmail key revoke)", nextKeyPath(c))
	}
	if err != nil {
		return fmt.Errorf("reading the next key: %w", err)
	}
	log, err := ownKeyLog(c, id)
	if err != nil {
		return err
	}
	rot, err := record.Rotate(log, id, next, id.Difficulty(), time.Now(), crand.Reader)
	if errors.Is(err, identity.ErrNextKeyMismatch) {
		return fmt.Errorf("%w: %s belongs to another identity or generation (check --next-key)", err, nextKeyPath(c))
	}
	if err != nil {
		return err
	}
	opt, err := keyFileOptions(c, s)
	if err != nil {
		return err
	}
	// The new keys reach the disk before anyone hears of them: a
	// rotation published but lost locally would lock the owner out. The
	// key file keeps the old decryption key for the grace period.
	if err := identity.ReplaceKeyFile(keyPath(c), rot.Identity, opt); err != nil {
		return err
	}
	if err := identity.ReplaceNextKeyFile(nextKeyPath(c), rot.Next, opt); err != nil {
		return fmt.Errorf("writing the new next key (the rotation is not published; keep %s safe): %w", keyPath(c), err)
	}
	if err := writeKeyLog(c, rot.Log); err != nil {
		return err
	}
	if err := writePubFile(c, rot.Identity); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "Rotated %s to generation %d.\nA new next key is in %s: back it up offline.\n",
		rot.Identity.Address(), rot.Identity.Generation(), nextKeyPath(c))
	n, err := startClient(c.Context, c, s)
	if err != nil {
		return fmt.Errorf("the rotation is saved but not published (%w): run `flowmail publish` when you are online", err)
	}
	defer n.Close()
	if err := publishOwnKeys(c.Context, c, n, rot.Identity); err != nil {
		return fmt.Errorf("the rotation is saved but not published (%w): run `flowmail publish` again", err)
	}
	fmt.Fprintln(s.out, "Published: senders now seal to the new key.")
	return nil
}

func runRevoke(c *cli.Context, s *streams) error {
	if !c.Bool("yes") {
		return errors.New("revocation is final: nobody can send to this address again and your mail from it is refused; run again with --yes to confirm")
	}
	var by record.Signer
	var log *record.Record
	if c.Bool("with-next") {
		next, err := identity.ReadNextKeyFile(nextKeyPath(c), func() ([]byte, error) { return readPassphrase(c, s, "Passphrase of the next key: ") })
		if err != nil {
			return fmt.Errorf("reading the next key: %w", err)
		}
		if log, err = readKeyLog(c); err != nil {
			return err
		}
		by = next
	} else {
		id, err := loadIdentity(c, s)
		if err != nil {
			return err
		}
		if log, err = ownKeyLog(c, id); err != nil {
			return err
		}
		by = id
	}
	rev, err := record.Revoke(log, by, time.Now())
	if err != nil {
		return err
	}
	if err := writeKeyLog(c, rev); err != nil {
		return err
	}
	addr := identity.FormatAddress(rev.KeyLog.Address())
	fmt.Fprintf(s.out, "Revoked %s.\n", addr)
	n, err := startClient(c.Context, c, s)
	if err != nil {
		return fmt.Errorf("the revocation is saved in %s but not published (%w): run `flowmail publish` when you are online", keyLogPath(c), err)
	}
	defer n.Close()
	if err := publishKeyLog(c.Context, n, rev); err != nil {
		return fmt.Errorf("the revocation is saved but not published (%w): run `flowmail publish` again", err)
	}
	fmt.Fprintln(s.out, "Published: senders are now refused.")
	return nil
}

func runMove(c *cli.Context, s *streams) error {
	if c.String("to-home") == "" {
		return errors.New("where to? give the new identity's data directory with --to-home (make it with `flowmail --home DIR init`)")
	}
	if !c.Bool("yes") {
		return errors.New("a move is final: senders are sent to the new address from now on; run again with --yes to confirm")
	}
	id, err := loadIdentity(c, s)
	if err != nil {
		return err
	}
	log, err := ownKeyLog(c, id)
	if err != nil {
		return err
	}
	next, err := identity.ReadNextKeyFile(nextKeyPath(c), func() ([]byte, error) { return readPassphrase(c, s, "Passphrase of the next key: ") })
	if err != nil {
		return fmt.Errorf("reading the next key (a move is signed with it): %w", err)
	}
	to, err := identity.ReadKeyFile(filepath.Join(c.String("to-home"), keyFileName), func() ([]byte, error) {
		return readPassphrase(c, s, "Passphrase of the new identity: ")
	})
	if err != nil {
		return fmt.Errorf("--to-home: %w", err)
	}
	moved, err := record.Move(log, next, to, time.Now())
	if err != nil {
		return err
	}
	if err := writeKeyLog(c, moved); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "Moved %s to %s.\n", id.Address(), to.Address())
	n, err := startClient(c.Context, c, s)
	if err != nil {
		return fmt.Errorf("the move is saved in %s but not published (%w): run `flowmail publish` when you are online", keyLogPath(c), err)
	}
	defer n.Close()
	if err := publishKeyLog(c.Context, n, moved); err != nil {
		return fmt.Errorf("the move is saved but not published (%w): run `flowmail publish` again", err)
	}
	fmt.Fprintln(s.out, "Published: senders are now told the new address.")
	return nil
}

// publishOwnKeys stores the user's current pubkey block and key log, so
// senders resolve the address to the current key; owners re-store both
// before they expire (publish, send and fetch do).
func publishOwnKeys(ctx context.Context, c *cli.Context, n delivery.Network, id *identity.Identity) error {
	if err := publishOwnPubkey(ctx, n, id); err != nil {
		return err
	}
	log, err := ownKeyLog(c, id)
	if err != nil {
		return err
	}
	return publishKeyLog(ctx, n, log)
}
