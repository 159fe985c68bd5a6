package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/bridge"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
	"github.com/flowmail/flowmail/record"
)

// bridgeDirName holds the bridge's files in the home directory: the
// password hash, the TLS certificate, the outbox.
const bridgeDirName = "bridge"

func bridgeCommand(s *streams) *cli.Command {
	return &cli.Command{
		Name:  "bridge",
		Usage: "serve your mail to any mail client over IMAP and SMTP",
		Description: "bridge keeps fetching your mail, as fetch --watch does, and serves it on this machine:\n" +
			"IMAP on 127.0.0.1:1143 and SMTP submission on 127.0.0.1:1025. Point Thunderbird, neomutt,\n" +
			"mbsync or a phone client at it with the user name and password `flowmail bridge password`\n" +
			"prints; `flowmail bridge --print-config thunderbird|neomutt|mbsync` writes the settings.\n" +
			"Mail you send is kept in an outbox until it is in the network, and retried; mail that\n" +
			"cannot go comes back to your INBOX with the reason. Mail to legacy (SMTP) addresses goes\n" +
			"through the gateway of your domain when you give your certified name with --as.",
		Flags: append(append([]cli.Flag{
			&cli.StringFlag{Name: "imap", Value: bridge.DefaultIMAPAddr, Usage: "IMAP listen address", EnvVars: []string{"FLOWMAIL_BRIDGE_IMAP"}},
			&cli.StringFlag{Name: "smtp", Value: bridge.DefaultSMTPAddr, Usage: "SMTP submission listen address", EnvVars: []string{"FLOWMAIL_BRIDGE_SMTP"}},
			&cli.BoolFlag{Name: "allow-remote", Usage: "allow listen addresses other than loopback (clients must use STARTTLS)"},
			&cli.StringFlag{Name: "maildir", Usage: "the mail store (default: <home>/Maildir)", EnvVars: []string{"FLOWMAIL_MAILDIR"}},
			&cli.DurationFlag{Name: "interval", Value: time.Minute, Usage: "time between fetches"},
			&cli.BoolFlag{Name: "keep", Usage: "leave fetched mail in the network"},
			&cli.StringFlag{Name: "print-config", Usage: "print settings for `CLIENT` (thunderbird, neomutt or mbsync) and exit"},
			&cli.StringFlag{Name: "as", Usage: "your certified `NAME` (alice@example.com): mail to legacy (SMTP) addresses goes through its domain's gateway, carrying its certificate", EnvVars: []string{"FLOWMAIL_AS"}},
		}, networkFlags()...), append(append(passphraseFlags(), dnsFlags()...), onionFlags()...)...),
		Action: func(c *cli.Context) error { return onionAdvice(runBridge(c, s)) },
		Subcommands: []*cli.Command{{
			Name:  "password",
			Usage: "print the user name and password mail clients log in with",
			Flags: append([]cli.Flag{
				&cli.BoolFlag{Name: "reset", Usage: "make a new password; the old one stops working"},
			}, passphraseFlags()...),
			Action: func(c *cli.Context) error {
				me, err := loadIdentity(c, s)
				if err != nil {
					return err
				}
				pw, err := bridge.ShowPassword(filepath.Join(c.String("home"), bridgeDirName), me, c.Bool("reset"), bridge.DefaultArgon2)
				if err != nil {
					return err
				}
				fmt.Fprintf(s.out, "username: %s\npassword: %s\n", bridge.UserName(me), pw)
				return nil
			},
		}},
	}
}

func runBridge(c *cli.Context, s *streams) error {
	if err := bridge.CheckListen(c.Bool("allow-remote"), c.String("imap"), c.String("smtp")); err != nil {
		return fmt.Errorf("%w: add --allow-remote to serve other machines (clients must then use STARTTLS)", err)
	}
	if c.Duration("interval") <= 0 {
		return fmt.Errorf("--interval %s: give a positive time between fetches, e.g. 1m", c.Duration("interval"))
	}
	if as := c.String("as"); as != "" {
		if _, err := record.Normalise(as); err != nil {
			return fmt.Errorf("--as: %w", nameAdvice(err, as))
		}
	}
	me, err := loadIdentity(c, s)
	if err != nil {
		return err
	}
	home := c.String("home")
	dir := filepath.Join(home, bridgeDirName)
	if client := c.String("print-config"); client != "" {
		return printClientConfig(s, client, me, c.String("imap"), c.String("smtp"), home)
	}
	maildir := c.String("maildir")
	if maildir == "" {
		maildir = filepath.Join(home, maildirName)
	}
	if _, err := os.Stat(filepath.Join(dir, bridge.LoginFile)); errors.Is(err, fs.ErrNotExist) {
		if _, err := bridge.ShowPassword(dir, me, false, bridge.DefaultArgon2); err != nil {
			return err
		}
		fmt.Fprintln(s.err, "made a password for your mail client: see it with `flowmail bridge password`")
	}
	n, err := startClient(c.Context, c, s)
	if err != nil {
		return err
	}
	defer n.Close()
	resolver, err := nameResolver(c, n)
	if err != nil {
		return err
	}
	log, err := newLogger(c, s.err)
	if err != nil {
		return err
	}
	// With --onion the bridge's stores, lists, fetches, deletes and
	// record lookups go through relays, as send and fetch do
	// (docs/PROTOCOL.md 14.9).
	net, release, _, err := networkFor(c, n, s.err)
	if err != nil {
		return err
	}
	defer release()
	routeNames(resolver, net)
	keep := c.Bool("keep")
	b, err := bridge.Start(c.Context, bridge.Config{
		Identity: me, Network: net, KeyLogs: keyLogsFor(n, net), Maildir: maildir, StateDir: filepath.Join(home, stateDirName), Dir: dir,
		IMAPAddr: c.String("imap"), SMTPAddr: c.String("smtp"), AllowRemote: c.Bool("allow-remote"),
		FetchInterval: c.Duration("interval"), Keep: keep, Logger: log,
		Resolve: func(ctx context.Context, name string) (block.ID, error) {
			if isName(name) {
				// alice@example.com: DNS and the name certificate, pinned
				// as send pins it (docs/PROTOCOL.md 19).
				b, err := resolveName(ctx, s.err, home, resolver, name, time.Now())
				if err != nil {
					// A domain without a flowmail record: an SMTP
					// address, for the gateway (send's rules, legacy.go).
					return block.ID{}, bridgeLegacy(ctx, resolver, home, name, err)
				}
				return b.Address(), nil
			}
			return resolveRecipient(home, name)
		},
		Gateway: func(ctx context.Context) (bridge.Gateway, error) {
			return bridgeGateway(ctx, s.err, home, resolver, c.String("as"), me)
		},
		OnFetch: func(rep *delivery.FetchReport, err error) {
			if rep != nil {
				for _, d := range rep.Delivered {
					fmt.Fprintf(s.out, "new mail from %s: %s\n", identity.FormatAddress(d.From), d.Subject)
				}
			}
			if err != nil && !errors.Is(err, bridge.ErrFetchBusy) {
				fmt.Fprintf(s.err, "fetch failed: %v (trying again in %s)\n", onionAdvice(err), c.Duration("interval"))
			}
		},
		OnSend: func(id string, err error, bounced bool) {
			switch {
			case err == nil:
				fmt.Fprintf(s.out, "sent %s\n", id)
			case bounced:
				fmt.Fprintf(s.err, "gave up sending %s: %v (the bounce is in your INBOX)\n", id, onionAdvice(err))
			default:
				fmt.Fprintf(s.err, "sending %s failed, will retry: %v\n", id, onionAdvice(err))
			}
		},
	})
	switch {
	case errors.Is(err, mailbox.ErrStoreLocked):
		return fmt.Errorf("%w: is a bridge already running for this Maildir? (--maildir picks another)", err)
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("%w: is a bridge or another mail server already running? pick other ports with --imap and --smtp", err)
	case err != nil:
		return err
	}
	fmt.Fprintf(s.out, "bridge for %s\nIMAP %s, SMTP %s (STARTTLS offered)\nuser name and password: flowmail bridge password\n", me.Address(), b.IMAPAddr(), b.SMTPAddr())
	<-c.Context.Done()
	return b.Close()
}

// printClientConfig writes ready settings for a mail client. The password
// is never written into them: mbsync and neomutt ask flowmail for it.
func printClientConfig(s *streams, client string, me *identity.Identity, imapAddr, smtpAddr, home string) error {
	ih, ip, err := net.SplitHostPort(imapAddr)
	if err != nil {
		return fmt.Errorf("--imap %q: %w", imapAddr, err)
	}
	sh, sp, err := net.SplitHostPort(smtpAddr)
	if err != nil {
		return fmt.Errorf("--smtp %q: %w", smtpAddr, err)
	}
	user, addr := bridge.UserName(me), mail.HeaderAddress(me.ID())
	// A key with a passphrase needs FLOWMAIL_PASSPHRASE_FILE in the
	// client's environment for this command.
	passCmd := fmt.Sprintf("flowmail --home %s bridge password | sed -n 's/^password: //p'", shellQuote(home))
	cert := filepath.Join(home, bridgeDirName, bridge.CertFile)
	switch strings.ToLower(client) {
	case "thunderbird":
		fmt.Fprintf(s.out, `Thunderbird: Account Settings > Account Actions > Add Mail Account, then "Configure manually":

  Your name:       (anything)
  Email address:   %s
  Incoming:        IMAP, server %s, port %s, connection security STARTTLS, authentication "Normal password"
  Outgoing:        SMTP, server %s, port %s, connection security STARTTLS, authentication "Normal password"
  Username:        %s   (both)
  Password:        the one `+"`flowmail bridge password`"+` prints

Thunderbird asks once to accept the bridge's own certificate (%s): accept it permanently.
The bridge files what it sends in Sent itself: under Account Settings > Copies & Folders,
untick "Place a copy in", else Sent holds each mail twice.
`, addr, ih, ip, sh, sp, user, cert)
	case "neomutt":
		fmt.Fprintf(s.out, `# neomutt: put this in ~/.config/neomutt/neomuttrc (a key with a passphrase:
# set FLOWMAIL_PASSPHRASE_FILE for neomutt, the password command needs it)
set from = "%s"
set imap_user = "%s"
set imap_pass = "`+"`%s`"+`"
set folder = "imap://%s:%s/"
set spoolfile = "+INBOX"
# The bridge files what it sends in Sent itself; a copy from neomutt too
# would be a second one.
set copy = no
set record = "+Sent"
set postponed = "+Drafts"
set trash = "+Trash"
set ssl_starttls = yes
set ssl_force_tls = yes
set certificate_file = "%s"
set smtp_url = "smtp://%s@%s:%s/"
set smtp_pass = "`+"`%s`"+`"
`, addr, user, passCmd, ih, ip, cert, user, sh, sp, passCmd)
	case "mbsync":
		fmt.Fprintf(s.out, `# mbsync (isync): put this in ~/.mbsyncrc, then run: mbsync flowmail
# (a key with a passphrase: set FLOWMAIL_PASSPHRASE_FILE for mbsync, PassCmd needs it)
IMAPAccount flowmail
Host %s
Port %s
User %s
PassCmd "%s"
SSLType STARTTLS
CertificateFile %s

IMAPStore flowmail-remote
Account flowmail

MaildirStore flowmail-local
Path ~/Mail/flowmail/
Inbox ~/Mail/flowmail/INBOX
SubFolders Verbatim

Channel flowmail
Far :flowmail-remote:
Near :flowmail-local:
Patterns *
Create Near
SyncState *
`, ih, ip, user, passCmd, cert)
	default:
		return fmt.Errorf("--print-config %q: give thunderbird, neomutt or mbsync", client)
	}
	return nil
}

// shellQuote quotes a path for the shell commands of client configs.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
