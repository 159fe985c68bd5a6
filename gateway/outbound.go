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
		if r := g.retries[e.Name()]; r != nil && r.next.After(g.clock.Now()) {
			continue
		}
		g.relayFile(ctx, e.Name())
	}
}

// relayFile relays one spooled mail (name, in the spool's new/), bounces
// what cannot go, and removes it once every recipient is delivered or
// bounced. The retry queue is written after every change, so a restart
// goes on where this left off.
func (g *Gateway) relayFile(ctx context.Context, name string) {
	path := filepath.Join(g.maildir(), "new", name)
	rep := RelayReport{Bounced: map[string]string{}}
	queued := g.retries[name] != nil
	done, subject, sender, relayTo, err := g.relay(ctx, name, &rep)
	if ctx.Err() != nil {
		return // stopping: the mail stays spooled
	}
	if err != nil {
		rep.Bounced[""] = oneLine(err)
	}
	if len(rep.Deferred) > 0 && err == nil {
		r := g.retries[name]
		full := r == nil && len(g.retries) >= MaxDeferred
		if r == nil {
			r = &retry{}
		}
		delivered := map[string]bool{}
		for _, d := range rep.Delivered {
			delivered[lower(d)] = true
		}
		for i, a := range relayTo {
			if delivered[lower(a)] {
				r.done |= 1 << i
			}
		}
		r.attempts++
		switch {
		case full, checkSpoolName(name) != nil:
			why := fmt.Sprintf("the gateway holds %d mails for a retry already", MaxDeferred)
			if !full {
				why = "its spool name cannot be kept in the retry file"
			}
			for _, d := range rep.Deferred {
				rep.Bounced[d] = fmt.Sprintf("not retried: %s; the failure: %s", why, rep.Bounced[d])
			}
			rep.Deferred = nil
			done = true
		case r.attempts < MaxRelayAttempts:
			base := g.cfg.RetryAfter
			if base <= 0 {
				base = 5 * time.Minute
			}
			// Whole seconds, as the retry file keeps it.
			r.next = time.Unix(g.clock.Now().Add(min(base<<(r.attempts-1), 6*time.Hour)).Unix(), 0)
			for _, d := range rep.Deferred {
				delete(rep.Bounced, d)
			}
			g.retries[name] = r
			done = false
		default:
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
		// The mail goes first, then its retry entry: a crash between
		// leaves an entry without a mail, which the next start drops.
		if rerr := os.Remove(path); rerr != nil {
			g.log.Error("removing a relayed mail from the spool", "err", rerr)
		}
		delete(g.retries, name)
	}
	if queued || g.retries[name] != nil {
		if serr := g.saveRetries(); serr != nil {
			g.log.Error("the retry queue", "err", serr)
		}
	}
	g.log.Info("outbound mail", "from", mail.HeaderAddress(sender), "delivered", len(rep.Delivered), "bounced", len(rep.Bounced), "deferred", len(rep.Deferred))
	if g.cfg.OnRelay != nil {
		rep.Sender = sender
		g.cfg.OnRelay(rep)
	}
}

// relay checks one spooled mail (20.5; file, in the spool's new/) and sends it by SMTP. It returns
// whether the mail is finished with, its subject, its sender (zero when
// unknown: no bounce is possible) and its relay recipients in the order
// the retry queue numbers them; err refuses the whole mail.
func (g *Gateway) relay(ctx context.Context, file string, rep *RelayReport) (done bool, subject string, sender block.ID, relayTo []string, err error) {
	path := filepath.Join(g.maildir(), "new", file)
	f, err := os.Open(path)
	if err != nil {
		return true, "", block.ID{}, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return true, "", block.ID{}, nil, err
	}
	// Maildir files have LF line ends; SMTP and DKIM want CRLF.
	br := bufio.NewReaderSize(mailbox.NewCRLFReader(f), mail.MaxHeaderSize)
	// The signer: the From of a fetched mail is checked against it
	// (docs/PROTOCOL.md 9.2), so it is read back from there.
	sender = g.senderOf(path)
	o, err := ParseOutbound(br, g.cfg.Domain)
	if err != nil {
		return true, "", sender, nil, err
	}
	relayTo = o.RelayTo
	subject = o.Header.Get("Subject")
	if auto := lower(o.Header.Get("Auto-Submitted")); auto != "" && auto != "no" {
		g.log.Info("dropping an automatic reply sent to the gateway", "from", mail.HeaderAddress(sender))
		return true, subject, block.ID{}, relayTo, nil
	}
	// Each mail counts once against its sender's limit, at its first
	// attempt; a retry sends to the recipients not done yet.
	todo := o.RelayTo
	if r := g.retries[file]; r != nil {
		todo = nil
		for i, a := range o.RelayTo {
			if r.done&(1<<i) == 0 {
				todo = append(todo, a)
			}
		}
	} else if ok, end := g.outRcpt.take(sender.String(), len(todo), g.clock.Now()); !ok {
		return true, subject, sender, relayTo, fmt.Errorf("%w: at most %d legacy recipients per %v; try again after %s", ErrRateLimited, OutboundPerSender, RateWindow, end.UTC().Format(time.RFC3339))
	}
	name, err := g.certifiedName(ctx, o, sender)
	if err != nil && isTemporary(err) {
		for _, a := range todo {
			rep.Deferred = append(rep.Deferred, a)
			rep.Bounced[a] = oneLine(err)
		}
		return false, subject, sender, relayTo, nil
	}
	if err != nil {
		return true, subject, sender, relayTo, err
	}
	if st.Size() > MaxOutboundSize {
		return true, subject, sender, relayTo, fmt.Errorf("the mail is %d bytes; the gateway relays at most %d", st.Size(), MaxOutboundSize)
	}
	body, err := io.ReadAll(io.LimitReader(br, MaxOutboundSize+1))
	if err != nil {
		return false, subject, sender, relayTo, err
	}
	var id [12]byte
	crand.Read(id[:])
	head := o.RelayHeaderBytes(name, "<"+hex.EncodeToString(id[:])+"@"+g.cfg.Domain+">")
	if n := len(head) + len(body); n > MaxOutboundSize {
		// CRLF line ends can make a file under the limit a message over it.
		return true, subject, sender, relayTo, fmt.Errorf("the mail is over %d bytes as sent; the gateway relays at most that", MaxOutboundSize)
	}
	var signed bytes.Buffer
	if err := dkim.Sign(&signed, io.MultiReader(bytes.NewReader(head), bytes.NewReader(body)), &dkim.SignOptions{
		Domain: g.cfg.Domain, Selector: g.cfg.DKIMSelector, Signer: g.cfg.DKIMKey,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
		HeaderKeys: signedHeaders,
	}); err != nil {
		return false, subject, sender, relayTo, fmt.Errorf("DKIM signing: %w", err)
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
	return len(rep.Deferred) == 0, subject, sender, relayTo, nil
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
