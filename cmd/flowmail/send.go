package main

import (
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
	"github.com/flowmail/flowmail/naming"
	"github.com/flowmail/flowmail/node"
	"github.com/flowmail/flowmail/record"
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
			&cli.StringSliceFlag{Name: "to", Usage: "recipient: a contact name, a name as alice@example.com (DNS and the domain's certificate, pinned on first use), fm1…, fm1…@flowmail.invalid or 'Bob <fm1…@flowmail.invalid>' (repeatable; at least one)"},
			&cli.StringSliceFlag{Name: "cc", Usage: "copy recipient (repeatable)"},
			&cli.StringSliceFlag{Name: "bcc", Usage: "blind copy recipient, sent a separate mail that names nobody else's copy (repeatable)"},
			&cli.StringFlag{Name: "subject", Usage: "subject line"},
			&cli.StringFlag{Name: "body", Usage: "message text (default: read standard input)"},
			&cli.StringSliceFlag{Name: "attach", Usage: "file to attach (repeatable)"},
			&cli.StringFlag{Name: "from-name", Usage: "your display name in the From header"},
			&cli.StringFlag{Name: "as", Usage: "carry the certificate of your `NAME` (alice@example.com), so recipients see it in From", EnvVars: []string{"FLOWMAIL_AS"}},
			yesFlag,
		}, networkFlags()...), append(append(passphraseFlags(), dnsFlags()...), onionFlags()...)...),
		Action: func(c *cli.Context) error { return onionAdvice(runSend(c, s)) },
	}
}

// recipientAdvice explains why a recipient's key could not be resolved
// and what to do: nothing is stored for a mail that fails here.
func recipientAdvice(name string, st record.KeyState, err error) error {
	switch {
	case errors.Is(err, record.ErrRevoked):
		return fmt.Errorf("%s revoked its key: nothing was sent, and nothing can be (%w); ask them how to reach them now", name, err)
	case errors.Is(err, record.ErrMoved):
		return fmt.Errorf("%s moved to %s: nothing was sent; send to the new address (and `flowmail contacts add NAME %s`) (%w)",
			name, identity.FormatAddress(st.MovedTo), identity.FormatAddress(st.MovedTo), err)
	case errors.Is(err, record.ErrForked):
		return fmt.Errorf("the key history of %s forked, so someone else holds its keys: nothing was sent; check with them out of band (%w)", name, err)
	case errors.Is(err, node.ErrNotFound):
		return fmt.Errorf("%s has no published key in the network (%w): ask them to run `flowmail publish` or `flowmail fetch` once", name, err)
	}
	return fmt.Errorf("looking up the key of %s: %w", name, err)
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
	// Names (alice@example.com) resolve through DNS and the DHT, so the
	// client joins first when there is one; otherwise a typo in a contact
	// name is reported before any network wait.
	var n *node.Node
	var resolver *naming.Resolver
	var net delivery.Network // the node, or with --onion its view through relays
	all := slices.Concat(c.StringSlice("to"), c.StringSlice("cc"), c.StringSlice("bcc"))
	if slices.ContainsFunc(all, isName) || c.String("as") != "" {
		if n, err = startClient(ctx, c, s); err != nil {
			return err
		}
		defer n.Close()
		var release func()
		if net, release, _, err = networkFor(c, n, s.err); err != nil {
			return err
		}
		defer release()
		if resolver, err = nameResolver(c, n); err != nil {
			return err
		}
		routeNames(resolver, net)
	}
	// --as: the certificate of the sender's own name goes in the message,
	// for recipients to check and show (docs/PROTOCOL.md 19.8).
	var carried []byte
	if as := c.String("as"); as != "" {
		b, err := resolveAs(ctx, s.err, home, resolver, as, me)
		if err != nil {
			return err
		}
		carried = b.Cert.Encode()
	}
	var to, cc, bcc []mail.Mailbox
	var names, bccNames []string
	var legacy legacyRecipients // SMTP addresses, through the gateway (legacy.go)
	seen := map[block.ID]bool{}
	for _, list := range []struct {
		args  []string
		dst   *[]mail.Mailbox
		names *[]string
	}{{c.StringSlice("to"), &to, &names}, {c.StringSlice("cc"), &cc, &names}, {c.StringSlice("bcc"), &bcc, &bccNames}} {
		for _, a := range list.args {
			var mb mail.Mailbox
			if isName(a) {
				b, err := resolveName(ctx, s.err, home, resolver, a, time.Now())
				if err != nil {
					lm, err := legacy.classify(ctx, resolver, home, a, err)
					if err != nil {
						return err
					}
					if legacy.add(lm) && list.dst != &bcc {
						*list.dst = append(*list.dst, lm) // a blind copy is named in the relay field only
					}
					continue
				}
				mb = mail.Mailbox{Name: b.Name, Address: b.Address()}
			} else {
				id, err := resolveRecipient(home, a)
				if err != nil {
					return err
				}
				mb = mail.Mailbox{Address: id}
			}
			if seen[mb.Address] {
				continue
			}
			seen[mb.Address] = true
			*list.dst = append(*list.dst, mb)
			*list.names = append(*list.names, displayName(a, mb.Address))
		}
	}
	var gateway mail.Mailbox
	var gatewayName string
	if len(legacy.relay) > 0 {
		if gateway, gatewayName, err = legacy.gateway(ctx, s.err, home, resolver, c.String("as")); err != nil {
			return err
		}
	}
	text, err := readBody(c, s)
	if err != nil {
		return err
	}
	if err := checkAttachmentSizes(c.StringSlice("attach"), len(text)); err != nil {
		return err
	}
	if n == nil {
		if n, err = startClient(ctx, c, s); err != nil {
			return err
		}
		defer n.Close()
		var release func()
		if net, release, _, err = networkFor(c, n, s.err); err != nil {
			return err
		}
		defer release()
	}
	if err := publishOwnKeys(ctx, c, net, me); err != nil {
		fmt.Fprintf(s.err, "warning: %v (replies may not find you)\n", err)
	}
	book, err := loadContacts(home)
	if err != nil {
		return err
	}
	pinsChanged := false
	lookup := func(mbs []mail.Mailbox, names []string) ([]*identity.PublicKey, error) {
		keys := make([]*identity.PublicKey, len(mbs))
		for i, mb := range mbs {
			// A signed move the user agrees to follow re-addresses the
			// mail to the new address (mbs is to, cc or bcc itself).
			k, addr, changed, err := resolveContact(ctx, c, s, net, keyLogsFor(n, net), book, names[i], mb.Address)
			if err != nil {
				return nil, err
			}
			mbs[i].Address = addr
			pinsChanged = pinsChanged || changed
			keys[i] = k
		}
		return keys, nil
	}
	// Legacy recipients are not looked up (the gateway's copy reaches
	// them); a followed move re-addresses the flowmail ones in place.
	toCc := slices.Concat(to, cc)
	direct := flowmailOnly(toCc)
	keys, err := lookup(direct, names)
	if err != nil {
		return err
	}
	readdress(toCc, direct)
	to, cc = toCc[:len(to)], toCc[len(to):]
	var gatewayKeys []*identity.PublicKey
	if len(legacy.relay) > 0 {
		if gatewayKeys, err = lookup([]mail.Mailbox{gateway}, []string{gatewayName}); err != nil {
			return err
		}
	}
	bccKeys, err := lookup(bcc, bccNames)
	if err != nil {
		return err
	}
	if pinsChanged {
		if err := book.save(home); err != nil {
			return fmt.Errorf("saving the keys seen in %s: %w", contactsPath(home), err)
		}
	}

	// The message is composed into the outbox once, attachments read in
	// pieces, and sent from there; the same send run again after an
	// interruption finds it and resumes (delivery.SendOptions.State).
	box := mailbox.Outbox{Dir: filepath.Join(home, outboxDirName)}
	key, err := sendKey(me.ID(), c, to, cc, bcc, text)
	if err != nil {
		return err
	}
	resumed, err := box.Add(key, func(w io.Writer) error {
		var atts []mail.Attachment
		for _, path := range c.StringSlice("attach") {
			f, err := os.Open(path)
			if err != nil {
				return fmt.Errorf("--attach: %w", err)
			}
			defer f.Close()
			ct := mime.TypeByExtension(filepath.Ext(path))
			atts = append(atts, mail.Attachment{Name: filepath.Base(path), ContentType: ct, Reader: f})
		}
		if carried != nil {
			if err := writeNameCertHeader(w, carried); err != nil {
				return err
			}
		}
		return mail.WriteMessage(w, &mail.Message{
			From:        mail.Mailbox{Name: c.String("from-name"), Address: me.ID()},
			To:          to,
			Cc:          cc,
			Subject:     c.String("subject"),
			Text:        text,
			Attachments: atts,
			Date:        time.Now(),
		}, crand.Reader)
	})
	if err != nil {
		return err
	}
	if resumed {
		fmt.Fprintln(s.err, "resuming the interrupted send of this mail")
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
		if len(m.keys) == 0 {
			continue // legacy recipients only: the gateway's copy below
		}
		if err := sendOne(ctx, s, net, codec, me, home, box.Message(key), box.State(key, strconv.Itoa(i)), m); err != nil {
			return err
		}
	}
	if len(legacy.relay) > 0 {
		// The gateway's copy is a mail of its own, the relay field before
		// the same message, so flowmail recipients never see the field.
		if err := legacy.send(ctx, s, net, codec, me, home, box, key, gatewayKeys, gatewayName); err != nil {
			return err
		}
	}
	return box.Remove(key)
}

// outboxDirName holds messages being sent, in the home directory.
const outboxDirName = "outbox"

// sendKey names one send in the outbox: the same sender, recipients,
// subject, text and attachment files (by path, size and time) give the
// same key, so running a send again finds the message it was sending.
func sendKey(me block.ID, c *cli.Context, to, cc, bcc []mail.Mailbox, text string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%x\x00%q\x00%q\x00%q\x00", me[:], c.String("from-name"), c.String("subject"), text)
	for _, list := range [][]mail.Mailbox{to, cc, bcc} {
		for _, mb := range list {
			h.Write(mb.Address[:])
			h.Write([]byte(mb.Email)) // nothing for a flowmail address
		}
		h.Write([]byte{0})
	}
	for _, path := range c.StringSlice("attach") {
		abs, err := filepath.Abs(path)
		if err != nil {
			return "", fmt.Errorf("--attach: %w", err)
		}
		fi, err := os.Stat(abs)
		if err != nil {
			return "", fmt.Errorf("--attach: %w", err)
		}
		fmt.Fprintf(h, "%q\x00%d\x00%d\x00", abs, fi.Size(), fi.ModTime().UnixNano())
	}
	return hex.EncodeToString(h.Sum(nil)[:16]), nil
}

// mailSend is one mail of a send: the main one, or one blind copy.
type mailSend struct {
	keys  []*identity.PublicKey
	names []string
	blind bool
}

func sendOne(ctx context.Context, s *streams, n delivery.Network, codec *mail.Codec, me *identity.Identity, home, spool, state string, m mailSend) error {
	prog := newSendProgress(s.err, m.names)
	start := time.Now()
	f, err := os.Open(spool)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	claims, covered, err := sendClaims(home, m.keys, m.names)
	if err != nil {
		return err
	}
	if len(covered) > 0 {
		fmt.Fprintln(s.err, grantNote(covered))
	}
	sent, err := delivery.Send(ctx, n, codec, mail.BuildInput{Sender: me, Recipients: m.keys, Grants: claims, Message: f, Size: fi.Size(), Now: time.Now(), Locator: true},
		delivery.SendOptions{Progress: prog.Report, State: state})
	prog.finishBar()
	if errors.Is(err, delivery.ErrSendState) {
		return err
	}
	if err != nil {
		return fmt.Errorf("storing the mail in the network: %w (nothing was delivered to %s yet; run the same send again to resume it)", err, strings.Join(m.names, ", "))
	}
	what := "sent"
	if m.blind {
		what = "sent a blind copy of"
	}
	l := sent.Layout
	data, parity := (l.Groups-1)*mail.GroupDataShards+l.Last.Data, (l.Groups-1)*mail.ParityShards(mail.GroupDataShards)+l.Last.Parity
	fmt.Fprintf(s.out, "%s %d bytes to %s in %s: %d data + %d parity blocks in %d group(s)\n",
		what, fi.Size(), strings.Join(m.names, ", "), time.Since(start).Round(time.Millisecond), data, parity, l.Groups)
	if sent.Reused > 0 {
		fmt.Fprintf(s.out, "(%d blocks were stored by the interrupted send and not stored again)\n", sent.Reused)
	}
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
