package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
	"github.com/urfave/cli/v2"

	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
)

// maxHeaderRead bounds what headerSummary reads of a mail.
const maxHeaderRead = 1 << 20

const (
	maildirName  = "Maildir"
	stateDirName = "state"
)

func fetchCommand(s *streams) *cli.Command {
	return &cli.Command{
		Name:  "fetch",
		Usage: "fetch new mail into your Maildir",
		Description: "fetch asks the nodes near your address for mail, checks and decrypts it, and\n" +
			"writes it into <home>/Maildir/new, where mutt, neomutt or notmuch read it. The network\n" +
			"then drops the mail (unless --keep). It also renews your published key.\n\n" +
			"What each fetch saw is kept in <home>/" + stateDirName + "/" + mailbox.StateFile + " (the processed set): a mail is\n" +
			"delivered once, one that failed a check is never fetched again, and one whose pieces\n" +
			"are missing is retried at later fetches. A second fetch of a home while one runs stops.",
		Flags: append(append([]cli.Flag{
			&cli.StringFlag{Name: "maildir", Usage: "Maildir to deliver into (default: <home>/Maildir)", EnvVars: []string{"FLOWMAIL_MAILDIR"}},
			&cli.BoolFlag{Name: "keep", Usage: "leave fetched mail in the network"},
			&cli.BoolFlag{Name: "watch", Usage: "keep fetching until interrupted"},
			&cli.DurationFlag{Name: "interval", Value: time.Minute, Usage: "time between fetches with --watch"},
		}, networkFlags()...), append(append(passphraseFlags(), dnsFlags()...), onionFlags()...)...),
		Action: func(c *cli.Context) error { return onionAdvice(runFetch(c, s)) },
	}
}

func runFetch(c *cli.Context, s *streams) error {
	ctx := c.Context
	if c.Bool("watch") && c.Duration("interval") <= 0 {
		return fmt.Errorf("--interval %s: give a positive time between fetches, e.g. 30s", c.Duration("interval"))
	}
	me, err := loadIdentity(c, s)
	if err != nil {
		return err
	}
	home := c.String("home")
	maildir := c.String("maildir")
	if maildir == "" {
		maildir = filepath.Join(home, maildirName)
	}
	st, err := mailbox.OpenState(filepath.Join(home, stateDirName))
	if err != nil {
		return err
	}
	defer st.Close()
	n, err := startClient(ctx, c, s)
	if err != nil {
		return err
	}
	defer n.Close()
	net, release, onionOn, err := networkFor(c, n, s.err)
	if err != nil {
		return err
	}
	defer release()
	keep := c.Bool("keep")
	codec, err := mail.NewCodec()
	if err != nil {
		return err
	}
	defer codec.Close()
	log, err := newLogger(c, s.err)
	if err != nil {
		return err
	}
	book, _ := loadContacts(home) // names are a nicety; a broken file is reported by `contacts list`
	resolver, err := nameResolver(c, n)
	if err != nil {
		return err
	}
	routeNames(resolver, net)

	// The key is renewed once per run and then daily: the network keeps
	// it 30 days, and --watch need not store it again every minute.
	var published time.Time
	once := func(ctx context.Context) error {
		if time.Since(published) > 24*time.Hour {
			if err := publishOwnKeys(ctx, c, net, me); err != nil {
				fmt.Fprintf(s.err, "warning: %v\n", err)
			} else {
				published = time.Now()
			}
		}
		grants, err := loadGrants(home)
		if err != nil {
			return err
		}
		prog := newFetchProgress(s.err)
		opt := delivery.FetchOptions{Maildir: maildir, Now: time.Now(), Keep: keep, Logger: log, KeyLogs: keyLogsFor(n, net), Progress: prog.Report,
			ShardCache: filepath.Join(home, stateDirName, "shards"), Grants: grants}
		var rep *delivery.FetchReport
		if d, derr := readDelegation(home); derr == nil && !onionOn {
			// The server holds what the network may have dropped; it is
			// asked first, then the network for what it missed (or
			// alone when the server is down; spec 21.6).
			rep, err = fetchDelegated(ctx, c, s, d, net, codec, me, st, opt)
		} else {
			rep, err = delivery.Fetch(ctx, net, codec, me, st, opt)
		}
		prog.finish()
		keepGrants(s, home, me.ID(), rep)
		if !onionOn { // the lookups would show the DHT whom this client knows
			refreshContactLogs(ctx, n.DHT(), home, time.Now(), log)
		}
		if rep != nil {
			showSenderNames(ctx, s, resolver, rep)
		}
		return finishFetch(s, book, rep, err, err != nil && ctx.Err() != nil)
	}
	if !c.Bool("watch") {
		return once(ctx)
	}
	t := time.NewTicker(c.Duration("interval"))
	defer t.Stop()
	for {
		if err := once(ctx); err != nil {
			if errors.Is(err, errInterrupted) {
				fmt.Fprintf(s.err, "%v\n", err)
				return nil // Ctrl-C is how --watch ends
			}
			fmt.Fprintf(s.err, "fetch failed: %v (trying again in %s)\n", err, c.Duration("interval"))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// errInterrupted: a fetch stopped by a signal. What it delivered is in
// the Maildir and printed; the rest waits in the network.
var errInterrupted = errors.New("fetch interrupted")

// finishFetch prints what one fetch did and returns what the command
// returns. An interrupted fetch says so, and what it delivered, never
// "no new mail" followed by a bare "context canceled".
func finishFetch(s *streams, book *contactBook, rep *delivery.FetchReport, err error, interrupted bool) error {
	if rep != nil {
		printReport(s, book, rep, interrupted)
	}
	if err == nil || !interrupted {
		return err
	}
	if rep == nil || rep.Listed == 0 {
		return fmt.Errorf("%w before the nodes near your address had listed your mail: nothing was delivered", errInterrupted)
	}
	waiting := rep.Listed - rep.Skipped - len(rep.Delivered) - len(rep.Rejected) - rep.NotForMe
	return fmt.Errorf("%w: %d new mail(s) delivered, %d more listed wait in the network: run fetch again", errInterrupted, len(rep.Delivered), max(waiting, 0))
}

func printReport(s *streams, book *contactBook, rep *delivery.FetchReport, interrupted bool) {
	for _, d := range rep.Delivered {
		from := identity.FormatAddress(d.From)
		if book != nil {
			for name, a := range book.Contacts {
				if a == from {
					from = name + " <" + from + ">"
				}
			}
		}
		subject, date := headerSummary(d.Path)
		fmt.Fprintf(s.out, "From:    %s\nSubject: %s\nDate:    %s\nFile:    %s\n\n", from, subject, date, d.Path)
		if d.DeleteErr != nil {
			fmt.Fprintf(s.err, "note: the mail stays in the network until it expires (deleting it failed: %v)\n", d.DeleteErr)
		}
	}
	for _, r := range rep.Rejected {
		fmt.Fprintf(s.err, "rejected %v\n", r)
	}
	for _, r := range rep.Deferred {
		fmt.Fprintf(s.err, "will retry %v\n", r)
	}
	if rep.ListErr != nil {
		fmt.Fprintf(s.err, "some nodes near your address did not answer (%v): fetch again later for mail they hold\n", rep.ListErr)
	}
	if rep.Missing > 0 {
		fmt.Fprintf(s.err, "%d listed mail(s) could not be found in the network (tried again if listed again)\n", rep.Missing)
	}
	if rep.Remaining > 0 {
		fmt.Fprintf(s.err, "%d more listed mail(s) wait: run fetch again\n", rep.Remaining)
	}
	if len(rep.Delivered) == 0 && !interrupted {
		fmt.Fprintln(s.err, "no new mail")
	}
}

// headerSummary reads Subject and Date from a delivered file's header,
// which is all it reads of a mail of up to 32 MiB.
func headerSummary(path string) (subject, date string) {
	f, err := os.Open(path)
	if err != nil {
		return "?", "?"
	}
	defer f.Close()
	h, err := textproto.ReadHeader(bufio.NewReader(io.LimitReader(f, maxHeaderRead)))
	if err != nil {
		return "?", "?"
	}
	mh := gomail.Header{Header: message.Header{Header: h}}
	subject, _ = mh.Subject()
	if d, err := mh.Date(); err == nil {
		date = d.Local().Format(time.RFC1123Z)
	}
	return subject, date
}
