package gateway

import (
	"bufio"
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	gomessage "github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-msgauth/dkim"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
	"github.com/flowmail/flowmail/naming"
	"github.com/flowmail/flowmail/record"
)

// RelayReport tells the outcome of one outbound mail.
type RelayReport struct {
	Sender    block.ID          // the flowmail sender
	Delivered []string          // legacy recipients the remote MTA took
	Bounced   map[string]string // recipient ("" for the whole mail) -> why
	Deferred  []string          // left for a retry
	BounceErr error             // sending the bounce failed
}

// retry is an outbound mail that failed for now.
type retry struct {
	attempts int
	next     time.Time
	done     map[string]bool // recipients delivered already
}

// signedHeaders are the fields the DKIM signature covers (RFC 6376
// 5.4.1), each once more than present so none can be added.
var signedHeaders = []string{"From", "Reply-To", "Subject", "Date", "To", "Cc", "Message-ID", "In-Reply-To", "References",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding"}

func (g *Gateway) outboundLoop(ctx context.Context) {
	every := g.cfg.FetchInterval
	if every <= 0 {
		every = time.Minute
	}
	for {
		g.fetchAndRelay(ctx)
		t := g.clock.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-g.kick:
		case <-t.C:
		}
		t.Stop()
	}
}

// fetchAndRelay fetches the gateway's mail into its spool, then relays
// every spooled mail whose time has come (a crash leaves mail spooled:
// it is relayed at the next start).
func (g *Gateway) fetchAndRelay(ctx context.Context) {
	rep, err := delivery.Fetch(ctx, g.cfg.Network, g.codec, g.cfg.Identity, g.state, delivery.FetchOptions{
		Maildir: g.maildir(), Now: g.clock.Now(), KeyLogs: g.cfg.KeyLogs, Logger: g.log,
	})
	if err != nil && ctx.Err() == nil {
		g.log.Warn("fetching outbound mail", "err", err)
	}
	if rep != nil {
		for _, r := range rep.Rejected {
			g.log.Warn("outbound mail refused by the network checks", "err", r)
		}
	}
	if g.cfg.OnPass != nil {
		defer func() { g.cfg.OnPass(rep, err) }()
	}
	entries, rerr := os.ReadDir(filepath.Join(g.maildir(), "new"))
	if rerr != nil {
		g.log.Warn("reading the spool", "err", rerr)
		return
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		if ctx.Err() != nil {
			return
		}
		path := filepath.Join(g.maildir(), "new", e.Name())
		if r := g.retries[path]; r != nil && r.next.After(g.clock.Now()) {
			continue
		}
		g.relayFile(ctx, path)
	}
}

// relayFile relays one spooled mail, bounces what cannot go, and removes
// it once every recipient is delivered or bounced.
func (g *Gateway) relayFile(ctx context.Context, path string) {
	rep := RelayReport{Bounced: map[string]string{}}
	done, subject, sender, err := g.relay(ctx, path, &rep)
	if ctx.Err() != nil {
		return // stopping: the mail stays spooled
	}
	if err != nil {
		rep.Bounced[""] = oneLine(err)
	}
	if len(rep.Deferred) > 0 && err == nil {
		r := g.retries[path]
		if r == nil {
			r = &retry{done: map[string]bool{}}
			g.retries[path] = r
		}
		for _, d := range rep.Delivered {
			r.done[d] = true
		}
		r.attempts++
		if r.attempts < MaxRelayAttempts {
			base := g.cfg.RetryAfter
			if base <= 0 {
				base = 5 * time.Minute
			}
			r.next = g.clock.Now().Add(min(base<<(r.attempts-1), 6*time.Hour))
			for _, d := range rep.Deferred {
				delete(rep.Bounced, d)
			}
			done = false
		} else {
			for _, d := range rep.Deferred {
				rep.Bounced[d] = fmt.Sprintf("gave up after %d attempts; the last: %s", MaxRelayAttempts, rep.Bounced[d])
			}
			rep.Deferred = nil
			done = true
		}
	}
	if len(rep.Bounced) > 0 && sender != (block.ID{}) {
		rep.BounceErr = g.bounce(ctx, sender, subject, rep.Bounced)
		if rep.BounceErr != nil {
			g.log.Warn("sending a bounce", "to", mail.HeaderAddress(sender), "err", rep.BounceErr)
		}
	}
	if done || err != nil {
		delete(g.retries, path)
		if rerr := os.Remove(path); rerr != nil {
			g.log.Error("removing a relayed mail from the spool", "err", rerr)
		}
	}
	g.log.Info("outbound mail", "from", mail.HeaderAddress(sender), "delivered", len(rep.Delivered), "bounced", len(rep.Bounced), "deferred", len(rep.Deferred))
	if g.cfg.OnRelay != nil {
		rep.Sender = sender
		g.cfg.OnRelay(rep)
	}
}

// relay checks one spooled mail (20.5) and sends it by SMTP. It returns
// whether the mail is finished with, its subject and its sender (zero
// when unknown: no bounce is possible); err refuses the whole mail.
func (g *Gateway) relay(ctx context.Context, path string, rep *RelayReport) (done bool, subject string, sender block.ID, err error) {
	f, err := os.Open(path)
	if err != nil {
		return true, "", block.ID{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return true, "", block.ID{}, err
	}
	// Maildir files have LF line ends; SMTP and DKIM want CRLF.
	br := bufio.NewReaderSize(mailbox.NewCRLFReader(f), mail.MaxHeaderSize)
	// The signer: the From of a fetched mail is checked against it
	// (docs/PROTOCOL.md 9.2), so it is read back from there.
	sender = g.senderOf(path)
	o, err := ParseOutbound(br, g.cfg.Domain)
	if err != nil {
		return true, "", sender, err
	}
	subject = o.Header.Get("Subject")
	if auto := lower(o.Header.Get("Auto-Submitted")); auto != "" && auto != "no" {
		g.log.Info("dropping an automatic reply sent to the gateway", "from", mail.HeaderAddress(sender))
		return true, subject, block.ID{}, nil
	}
	// Each mail counts once against its sender's limit, at its first
	// attempt; a retry sends to the recipients not done yet.
	todo := o.RelayTo
	if r := g.retries[path]; r != nil {
		todo = nil
		for _, a := range o.RelayTo {
			if !r.done[lower(a)] {
				todo = append(todo, a)
			}
		}
	} else if ok, end := g.outRcpt.take(sender.String(), len(todo), g.clock.Now()); !ok {
		return true, subject, sender, fmt.Errorf("%w: at most %d legacy recipients per %v; try again after %s", ErrRateLimited, OutboundPerSender, RateWindow, end.UTC().Format(time.RFC3339))
	}
	name, err := g.certifiedName(ctx, o, sender)
	if err != nil && isTemporary(err) {
		for _, a := range o.RelayTo {
			rep.Deferred = append(rep.Deferred, a)
			rep.Bounced[a] = oneLine(err)
		}
		return false, subject, sender, nil
	}
	if err != nil {
		return true, subject, sender, err
	}
	if st.Size() > MaxOutboundSize {
		return true, subject, sender, fmt.Errorf("the mail is %d bytes; the gateway relays at most %d", st.Size(), MaxOutboundSize)
	}
	body, err := io.ReadAll(io.LimitReader(br, MaxOutboundSize+1))
	if err != nil {
		return false, subject, sender, err
	}
	var id [12]byte
	crand.Read(id[:])
	head := o.RelayHeaderBytes(name, "<"+hex.EncodeToString(id[:])+"@"+g.cfg.Domain+">")
	if n := len(head) + len(body); n > MaxOutboundSize {
		// CRLF line ends can make a file under the limit a message over it.
		return true, subject, sender, fmt.Errorf("the mail is over %d bytes as sent; the gateway relays at most that", MaxOutboundSize)
	}
	var signed bytes.Buffer
	if err := dkim.Sign(&signed, io.MultiReader(bytes.NewReader(head), bytes.NewReader(body)), &dkim.SignOptions{
		Domain: g.cfg.Domain, Selector: g.cfg.DKIMSelector, Signer: g.cfg.DKIMKey,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
		HeaderKeys: signedHeaders,
	}); err != nil {
		return false, subject, sender, fmt.Errorf("DKIM signing: %w", err)
	}
	for _, res := range g.deliver(ctx, name, todo, signed.Bytes()) {
		switch {
		case res.err == nil:
			rep.Delivered = append(rep.Delivered, res.rcpt)
		case res.permanent:
			rep.Bounced[res.rcpt] = oneLine(res.err)
		default:
			rep.Deferred = append(rep.Deferred, res.rcpt)
			rep.Bounced[res.rcpt] = oneLine(res.err) // bounced only if it gives up
			g.log.Warn("relay deferred", "to", res.rcpt, "err", res.err)
		}
	}
	return len(rep.Deferred) == 0, subject, sender, nil
}

// senderOf reads the From of a spooled mail: the signer's address.
func (g *Gateway) senderOf(path string) block.ID {
	f, err := os.Open(path)
	if err != nil {
		return block.ID{}
	}
	defer f.Close()
	h, err := textproto.ReadHeader(bufio.NewReader(io.LimitReader(f, mail.MaxHeaderSize)))
	if err != nil {
		return block.ID{}
	}
	mh := gomail.Header{Header: gomessage.Header{Header: h}}
	from, err := mh.AddressList("From")
	if err != nil || len(from) != 1 {
		return block.ID{}
	}
	id, _ := mail.ParseHeaderAddress(from[0].Address)
	return id
}

// certifiedName checks the certificate the mail carries: a name of the
// gateway's domain, binding the signer, that holds now (19.4 from step
// 2). Its name becomes the relayed From.
func (g *Gateway) certifiedName(ctx context.Context, o *Outbound, sender block.ID) (string, error) {
	if o.Carried == "" {
		return "", fmt.Errorf("%w: the mail carries no %s (send it with --as you@%s)", ErrNotCertified, naming.CertHeader, g.cfg.Domain)
	}
	rec, err := naming.ParseCarried(o.Carried)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNotCertified, err)
	}
	if rec.Kind != record.KindName {
		return "", fmt.Errorf("%w: the carried record is not a name certificate", ErrNotCertified)
	}
	c := rec.Name
	if _, d, _ := strings.Cut(c.Name, "@"); d != g.cfg.Domain || c.Address != sender {
		return "", fmt.Errorf("%w: the carried certificate binds %s to %s, not a name of %s to the sender", ErrNotCertified, c.Name, mail.HeaderAddress(c.Address), g.cfg.Domain)
	}
	lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	if _, err := g.cfg.Names.Verify(lctx, c, g.clock.Now()); err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrNotCertified, c.Name, err)
	}
	return c.Name, nil
}
