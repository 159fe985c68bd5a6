package main

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"mime"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/node"
)

func sendCommand(s *streams) *cli.Command {
	return &cli.Command{
		Name:      "send",
		Usage:     "send an encrypted mail",
		ArgsUsage: " ",
		Description: "send encrypts a mail to each recipient, stores it in the network, and grinds the\n" +
			"proof of work each recipient demands. The body comes from --body or standard input.\n\n" +
			"   echo 'See you at noon.' | flowmail send --to bob --subject Lunch --attach map.png",
		Flags: append(append([]cli.Flag{
			&cli.StringSliceFlag{Name: "to", Usage: "recipient: a contact name, fm1…, fm1…@flowmail.invalid or 'Bob <fm1…@flowmail.invalid>' (repeatable; at least one)"},
			&cli.StringSliceFlag{Name: "cc", Usage: "copy recipient (repeatable)"},
			&cli.StringSliceFlag{Name: "bcc", Usage: "blind copy recipient, sent a separate mail that names nobody else's copy (repeatable)"},
			&cli.StringFlag{Name: "subject", Usage: "subject line"},
			&cli.StringFlag{Name: "body", Usage: "message text (default: read standard input)"},
			&cli.StringSliceFlag{Name: "attach", Usage: "file to attach (repeatable)"},
			&cli.StringFlag{Name: "from-name", Usage: "your display name in the From header"},
		}, networkFlags()...), passphraseFlags()...),
		Action: func(c *cli.Context) error { return runSend(c, s) },
	}
}

func runSend(c *cli.Context, s *streams) error {
	ctx := c.Context
	if len(c.StringSlice("to")) == 0 {
		if len(c.StringSlice("bcc")) > 0 || len(c.StringSlice("cc")) > 0 {
			return errors.New("a mail needs a --to recipient; --cc and --bcc copies go beside it (to send only a blind copy, give that recipient as --to)")
		}
		return errors.New("whom to? give a recipient with --to (a contact name or an address)")
	}
	me, err := loadIdentity(c, s)
	if err != nil {
		return err
	}
	home := c.String("home")
	var to, cc, bcc []mail.Mailbox
	var names, bccNames []string
	seen := map[block.ID]bool{}
	for _, list := range []struct {
		args  []string
		dst   *[]mail.Mailbox
		names *[]string
	}{{c.StringSlice("to"), &to, &names}, {c.StringSlice("cc"), &cc, &names}, {c.StringSlice("bcc"), &bcc, &bccNames}} {
		for _, a := range list.args {
			id, err := resolveRecipient(home, a)
			if err != nil {
				return err
			}
			if seen[id] {
				continue
			}
			seen[id] = true
			*list.dst = append(*list.dst, mail.Mailbox{Address: id})
			*list.names = append(*list.names, displayName(a, id))
		}
	}
	text, err := readBody(c, s)
	if err != nil {
		return err
	}
	if err := checkAttachmentSizes(c.StringSlice("attach"), len(text)); err != nil {
		return err
	}
	var atts []mail.Attachment
	for _, path := range c.StringSlice("attach") {
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("--attach: %w", err)
		}
		ct := mime.TypeByExtension(filepath.Ext(path))
		atts = append(atts, mail.Attachment{Name: filepath.Base(path), ContentType: ct, Data: data})
	}
	msg, err := mail.Compose(&mail.Message{
		From:        mail.Mailbox{Name: c.String("from-name"), Address: me.ID()},
		To:          to,
		Cc:          cc,
		Subject:     c.String("subject"),
		Text:        text,
		Attachments: atts,
		Date:        time.Now(),
	}, crand.Reader)
	if err != nil {
		return err
	}

	n, err := startClient(ctx, c, s)
	if err != nil {
		return err
	}
	defer n.Close()
	if err := publishOwnPubkey(ctx, n, me); err != nil {
		fmt.Fprintf(s.err, "warning: %v (replies may not find you)\n", err)
	}
	lookup := func(mbs []mail.Mailbox, names []string) ([]*identity.PublicKey, error) {
		keys := make([]*identity.PublicKey, len(mbs))
		for i, mb := range mbs {
			k, err := delivery.LookupPubkey(ctx, n, mb.Address)
			if errors.Is(err, node.ErrNotFound) {
				return nil, fmt.Errorf("%s has no published key in the network (%w): ask them to run `flowmail publish` or `flowmail fetch` once", names[i], err)
			}
			if err != nil {
				return nil, fmt.Errorf("looking up the key of %s: %w", names[i], err)
			}
			keys[i] = k
		}
		return keys, nil
	}
	keys, err := lookup(append(append([]mail.Mailbox{}, to...), cc...), names)
	if err != nil {
		return err
	}
	bccKeys, err := lookup(bcc, bccNames)
	if err != nil {
		return err
	}

	codec, err := mail.NewCodec()
	if err != nil {
		return err
	}
	defer codec.Close()
	// The envelope every recipient verifies lists all of its recipients
	// (spec 9.2), so each blind copy is a mail of its own: same message,
	// an envelope naming only that recipient.
	mails := []mailSend{{keys: keys, names: names}}
	for i, k := range bccKeys {
		mails = append(mails, mailSend{keys: []*identity.PublicKey{k}, names: bccNames[i : i+1], blind: true})
	}
	for i, m := range mails {
		if err := sendOne(ctx, s, n, codec, me, msg, m); err != nil {
			if i > 0 {
				return fmt.Errorf("%w; the mail itself and %d blind copies before this one were sent: resend only the rest with --to", err, i-1)
			}
			return err
		}
	}
	return nil
}

// mailSend is one mail of a send: the main one, or one blind copy.
type mailSend struct {
	keys  []*identity.PublicKey
	names []string
	blind bool
}

func sendOne(ctx context.Context, s *streams, n delivery.Network, codec *mail.Codec, me *identity.Identity, msg []byte, m mailSend) error {
	prog := newSendProgress(s.err, m.names)
	start := time.Now()
	built, err := codec.Build(ctx, mail.BuildInput{Sender: me, Recipients: m.keys, Message: msg, Now: time.Now()},
		mail.BuildOptions{Progress: prog.Report})
	if err != nil {
		return err
	}
	defer built.Release()
	if err := delivery.Send(ctx, n, built, delivery.SendOptions{Progress: prog.Report}); err != nil {
		return fmt.Errorf("storing the mail in the network: %w (nothing was delivered to %s; run send again)", err, strings.Join(m.names, ", "))
	}
	what := "sent"
	if m.blind {
		what = "sent a blind copy of"
	}
	fmt.Fprintf(s.out, "%s %d bytes to %s in %s: %d data + %d parity blocks of %d bytes\n",
		what, len(msg), strings.Join(m.names, ", "), time.Since(start).Round(time.Millisecond), built.DataShards, built.ParityShards, built.ShardSize)
	return nil
}

// checkAttachmentSizes refuses, before anything is read or sent, files
// that cannot fit in one mail once base64 has grown them by a third.
func checkAttachmentSizes(paths []string, textLen int) error {
	total := int64(textLen)
	for _, path := range paths {
		fi, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("--attach: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("--attach %s: not a regular file", path)
		}
		total += (fi.Size() + 2) / 3 * 4
	}
	if total > mail.MaxMessageSize-64<<10 {
		return fmt.Errorf("the attachments come to %d MiB once encoded, over the %d MiB a mail can hold (about %d MiB of files): send fewer or smaller files",
			total>>20, mail.MaxMessageSize>>20, (mail.MaxMessageSize*3/4)>>20)
	}
	return nil
}

// displayName shows a recipient as typed when it was a contact name.
func displayName(typed string, id block.ID) string {
	if a := identity.FormatAddress(id); typed != a {
		return typed
	}
	return identity.FormatAddress(id)[:12] + "…"
}

// readBody takes --body, else standard input.
func readBody(c *cli.Context, s *streams) (string, error) {
	if c.IsSet("body") {
		return c.String("body"), nil
	}
	if f, ok := s.in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintln(s.err, "Type the message; end it with Ctrl-D on an empty line.")
	}
	b, err := io.ReadAll(io.LimitReader(s.in, maxBodyFromStdin+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxBodyFromStdin {
		return "", errors.New("the message text is over 16 MiB: send large content as an attachment (--attach FILE)")
	}
	return string(b), nil
}

const maxBodyFromStdin = 16 << 20
