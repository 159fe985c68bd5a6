package main

import (
	"bufio"
	"bytes"
	crand "crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
	"github.com/urfave/cli/v2"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
	"github.com/flowmail/flowmail/node"
	"github.com/flowmail/flowmail/testnet"
)

// demoDifficulty keeps the demo's proof of work to a fraction of a second
// while still grinding for real.
const demoDifficulty = 16

func testnetCommand(s *streams) *cli.Command {
	return &cli.Command{
		Name:  "testnet",
		Usage: "run a whole flowmail network on this machine",
		Description: "testnet starts N full nodes on 127.0.0.1 (real QUIC, real block stores under DIR)\n" +
			"and writes DIR/bootstrap.txt, which `send`, `fetch` and `publish` use with --testnet DIR.\n" +
			"It runs until Ctrl-C.\n\n" +
			"--demo instead creates two identities, sends a mail with an attachment from one to the\n" +
			"other, fetches it, prints it, and exits 0 only if what arrived is what was sent.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "nodes", Value: 10, Usage: "number of nodes"},
			&cli.StringFlag{Name: "dir", Usage: "directory for node data (default: " + defaultTestnetDir() + "; a fresh temporary one with --demo)"},
			&cli.BoolFlag{Name: "demo", Usage: "send and fetch one mail, check it, and exit"},
			requestTimeoutFlag(),
		},
		Action: func(c *cli.Context) error {
			if c.Int("nodes") < 1 || c.Int("nodes") > 1000 {
				return fmt.Errorf("--nodes %d: choose 1 to 1000", c.Int("nodes"))
			}
			if c.Bool("demo") {
				return runDemo(c, s)
			}
			return runTestnet(c, s)
		},
	}
}

func startTestnet(c *cli.Context, s *streams, dir string) (*testnet.Net, error) {
	log, err := newLogger(c, s.err)
	if err != nil {
		return nil, err
	}
	n := c.Int("nodes")
	fmt.Fprintf(s.err, "starting %d nodes in %s ", n, dir)
	start := time.Now()
	net, err := testnet.Start(c.Context, testnet.Config{
		Nodes:    n,
		Dir:      dir,
		Logger:   log,
		Progress: func(started, total int) { fmt.Fprint(s.err, ".") },
		Tune: func(i int, nc *node.Config) {
			setRequestTimeout(nc, c.Duration("request-timeout"))
			// Each node in a /16 of its own (loopback answers all of
			// 127/8): onion paths take at most one relay per /16, so
			// send --onion finds paths on a local testnet.
			nc.Listen = fmt.Sprintf("127.%d.0.1:0", i%254+1)
		},
		TuneClient: func(nc *node.Config) { setRequestTimeout(nc, c.Duration("request-timeout")) },
	})
	fmt.Fprintln(s.err)
	if err != nil {
		return nil, testnetAdvice(err)
	}
	fmt.Fprintf(s.err, "%d nodes up in %s\n", n, time.Since(start).Round(time.Millisecond))
	return net, nil
}

func runTestnet(c *cli.Context, s *streams) error {
	dir := c.String("dir")
	if dir == "" {
		dir = defaultTestnetDir()
	}
	net, err := startTestnet(c, s, dir)
	if err != nil {
		return err
	}
	defer net.Close()
	fmt.Fprintf(s.out, `testnet %q is running: %d nodes, bootstrap list in %s

Try it from another terminal:
  flowmail --home /tmp/alice init --no-passphrase
  flowmail --home /tmp/bob init --no-passphrase
  flowmail --home /tmp/bob publish --testnet %s
  echo hello | flowmail --home /tmp/alice send --testnet %s --to $(flowmail --home /tmp/bob whoami) --subject hi
  flowmail --home /tmp/bob fetch --testnet %s

Press Ctrl-C to stop.
`, net.Network(), len(net.Running()), filepath.Join(dir, testnet.BootstrapFileName), dir, dir, dir)
	<-c.Context.Done()
	fmt.Fprintln(s.err, "stopping the testnet")
	return net.Close()
}

// runDemo is the README's first command: a local network, a mail sent
// and fetched, and a check that what arrived is what was sent.
func runDemo(c *cli.Context, s *streams) error {
	ctx := c.Context
	began := time.Now()
	dir := c.String("dir")
	if dir == "" {
		tmp, err := os.MkdirTemp("", "flowmail-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	for _, user := range []string{"alice", "bob"} {
		if _, err := os.Stat(filepath.Join(dir, user)); err == nil {
			return fmt.Errorf("%s already holds a demo's %s: give --demo an empty --dir, or none for a temporary one", dir, user)
		}
	}
	net, err := startTestnet(c, s, dir)
	if err != nil {
		return err
	}
	defer net.Close()

	alice, err := testnet.NewUser(filepath.Join(dir, "alice"), demoDifficulty)
	if err != nil {
		return err
	}
	bob, err := testnet.NewUser(filepath.Join(dir, "bob"), demoDifficulty)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.out, "alice  %s\nbob    %s\n", alice.Address(), bob.Address())

	client, err := net.Client(ctx)
	if err != nil {
		return err
	}
	defer client.Close()
	if err := publishOwnPubkey(ctx, client, bob.Identity); err != nil {
		return err
	}
	fmt.Fprintln(s.out, "bob published his key")

	attachment := make([]byte, 300<<10) // spans several shards
	if _, err := crand.Read(attachment); err != nil {
		return err
	}
	sent, err := mail.Compose(&mail.Message{
		From:        mail.Mailbox{Name: "Alice", Address: alice.ID()},
		To:          []mail.Mailbox{{Name: "Bob", Address: bob.ID()}},
		Subject:     "Hello from the flowmail demo",
		Text:        "Hi Bob,\n\nthis mail crossed a peer-to-peer network sealed to your key.\nThe attachment is 300 KiB of random bytes.\n\nAlice\n",
		Attachments: []mail.Attachment{{Name: "random.bin", ContentType: "application/octet-stream", Data: attachment}},
		Date:        time.Now(),
	}, crand.Reader)
	if err != nil {
		return err
	}
	built, err := testnet.SendMail(ctx, client, alice.Identity, []block.ID{bob.ID()}, sent, newSendProgress(s.err, []string{"bob"}).Report)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.out, "alice sent %d bytes: %d data + %d parity blocks of %d bytes, index block ground to %d bits\n",
		len(sent), built.Layout.Last.Data, built.Layout.Last.Parity, built.Layout.Last.ShardSize, bob.Difficulty())
	built.Release()

	// Bob fetches through a client of his own, as a separate process would.
	bobClient, err := net.Client(ctx)
	if err != nil {
		return err
	}
	defer bobClient.Close()
	rep, err := testnet.FetchMail(ctx, bobClient, bob, delivery.FetchOptions{})
	if err != nil {
		return err
	}
	if len(rep.Delivered) != 1 {
		var why []string
		for _, r := range append(rep.Rejected, rep.Deferred...) {
			why = append(why, r.Error())
		}
		return fmt.Errorf("bob fetched %d mails, want 1 (listed %d; %s)", len(rep.Delivered), rep.Listed, strings.Join(why, "; "))
	}
	fmt.Fprintf(s.out, "bob fetched 1 mail from %s\n", identity.FormatAddress(rep.Delivered[0].From))
	got, err := os.ReadFile(rep.Delivered[0].Path)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.out, "\n----- the mail as delivered to %s -----\n", filepath.Join(dir, "bob", maildirName, "new"))
	printMailSummary(s, got)
	fmt.Fprintln(s.out, "-----")
	if !bytes.Equal(got, mailbox.ToLF(sent)) { // the Maildir keeps LF line ends
		return fmt.Errorf("the fetched mail (%d bytes) differs from the sent one (%d bytes)", len(got), len(sent))
	}
	fmt.Fprintf(s.out, "OK: bob received exactly the %d bytes alice sent (%s in all)\n", len(sent), time.Since(began).Round(time.Millisecond))
	return nil
}

// printMailSummary prints the main headers of a message and its size.
func printMailSummary(s *streams, msg []byte) {
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(msg)))
	if err != nil {
		fmt.Fprintf(s.out, "(unreadable header: %v)\n", err)
		return
	}
	mh := gomail.Header{Header: message.Header{Header: h}}
	for _, key := range []string{"From", "To"} {
		if as, err := mh.AddressList(key); err == nil {
			for _, a := range as {
				fmt.Fprintf(s.out, "%-8s %s\n", key+":", a.String())
			}
		}
	}
	subject, _ := mh.Subject()
	fmt.Fprintf(s.out, "%-8s %s\n", "Subject:", subject)
	if d, err := mh.Date(); err == nil {
		fmt.Fprintf(s.out, "%-8s %s\n", "Date:", d.Format(time.RFC1123Z))
	}
	fmt.Fprintf(s.out, "(%d bytes in the Maildir file, which keeps LF line ends: a text part and a base64 attachment)\n", len(msg))
}
