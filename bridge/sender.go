package bridge

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/crypto/chacha20"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
)

// LabelOutboxRand derives the randomness of each mail of an outbox entry
// from the entry's seed (docs/PROTOCOL.md 16.5).
const LabelOutboxRand = "flowmail/v1 outbox rand"

// giveUpAfter is how long a queued mail is tried at most: past it, its
// signing time nears what recipients accept (mail.ReplayWindow).
const giveUpAfter = 7 * 24 * time.Hour

func (b *Bridge) runCtx() context.Context { return b.ctx }

// sendLoop sends what the outbox holds: at start (mail a crash left),
// when a client submits, and when a retry is due.
func (b *Bridge) sendLoop(ctx context.Context) {
	for {
		next := b.sendDue(ctx)
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(b.clock.Now()), time.Millisecond)
		}
		t := b.clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-b.sendNow:
		case <-t.C:
		}
		t.Stop()
	}
}

// sendDue tries every queued mail whose time has come, oldest first, and
// returns when the next retry is due (zero: none waits).
func (b *Bridge) sendDue(ctx context.Context) time.Time {
	b.sendMu.Lock()
	defer b.sendMu.Unlock()
	ids, err := b.queue.List()
	if err != nil {
		b.log.Error("reading the outbox", "err", err)
		return b.clock.Now().Add(b.retryAfter(1))
	}
	var next time.Time
	for _, id := range ids {
		if ctx.Err() != nil {
			return time.Time{}
		}
		at, err := b.sendOne(ctx, id)
		if ctx.Err() != nil {
			return time.Time{} // stopping: the entry waits for the next start
		}
		if err != nil {
			b.log.Warn("sending a queued mail", "id", id, "err", err)
		}
		if !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	return next
}

func (b *Bridge) retryAfter(attempts int) time.Duration {
	base := b.cfg.RetryAfter
	if base <= 0 {
		base = time.Minute
	}
	return min(base<<min(attempts-1, 10), 6*time.Hour)
}

func (b *Bridge) maxAttempts() int {
	if b.cfg.MaxAttempts > 0 {
		return b.cfg.MaxAttempts
	}
	return 10
}

// sendOne sends the parts of one entry not sent yet. It returns when the
// entry is to be tried again (zero when it is done or bounced).
func (b *Bridge) sendOne(ctx context.Context, id string) (time.Time, error) {
	sub, r, err := b.queue.Open(id)
	if err != nil {
		return time.Time{}, err // a damaged entry stays for a person to look at
	}
	r.Close()
	st, err := b.queue.State(sub)
	if err != nil {
		return time.Time{}, err
	}
	now := b.clock.Now()
	if st.Next.After(now) {
		return st.Next, nil
	}
	var sendErr error
	permanent := false
	for part := range sub.Parts() {
		if st.Done[part] {
			continue
		}
		sendErr = b.sendPart(ctx, sub, part)
		if ctx.Err() != nil {
			return time.Time{}, ctx.Err()
		}
		if sendErr != nil {
			permanent = errors.Is(sendErr, ErrNoKey) || errors.Is(sendErr, ErrRecipientEnded) || errors.Is(sendErr, mail.ErrFromHeader) || errors.Is(sendErr, mail.ErrFromMismatch) ||
				errors.Is(sendErr, mail.ErrMessageSize) || errors.Is(sendErr, mail.ErrHeaderSize)
			break
		}
		st.Done[part] = true
		// Saved after each part: a crash now sends only the rest, and a
		// part sent twice is the same mail, delivered once.
		if err := b.queue.SaveState(sub, st); err != nil {
			return time.Time{}, err
		}
	}
	if sendErr == nil {
		b.log.Info("queued mail sent", "id", id)
		err := b.queue.Remove(id)
		b.notifySend(id, nil, false)
		return time.Time{}, err
	}
	st.Attempts++
	st.Err = sendErr.Error()
	if permanent || st.Attempts >= b.maxAttempts() || now.Sub(sub.Accepted) > giveUpAfter {
		if err := b.bounce(sub, st, sendErr, true); err != nil {
			return now.Add(b.retryAfter(st.Attempts)), err
		}
		err := b.queue.Remove(id)
		b.notifySend(id, sendErr, true)
		return time.Time{}, err
	}
	if st.Attempts == 1 {
		if err := b.bounce(sub, st, sendErr, false); err != nil {
			b.log.Warn("filing a delay notice", "err", err)
		}
	}
	st.Next = now.Add(b.retryAfter(st.Attempts))
	err = b.queue.SaveState(sub, st)
	b.notifySend(id, sendErr, false)
	return st.Next, err
}

func (b *Bridge) notifySend(id string, err error, bounced bool) {
	if b.cfg.OnSend != nil {
		b.cfg.OnSend(id, err, bounced)
	}
}

// sendPart builds and stores one mail of an entry: part 0 to the To and
// Cc recipients, part i the blind copy to Bcc[i-1]. Its randomness and
// signing time come from the entry, so building it again gives the same
// message ID: recipients deliver it once however often it is sent. The
// message streams from the entry's file, and delivery's send state
// beside it lets a part cut short resume with the blocks stored so far.
func (b *Bridge) sendPart(ctx context.Context, sub mailbox.Submission, part int) error {
	to := sub.To
	if part > 0 {
		to = sub.Bcc[part-1 : part]
	}
	if len(to) == 0 {
		return nil // only blind copies
	}
	keys := make([]*identity.PublicKey, len(to))
	for i, id := range to {
		k, err := b.lookupKey(ctx, id)
		if err != nil {
			return err
		}
		keys[i] = k
	}
	send := func() error {
		_, r, err := b.queue.Open(sub.ID)
		if err != nil {
			return err
		}
		defer r.Close()
		_, err = delivery.Send(ctx, b.cfg.Network, b.codec, mail.BuildInput{
			Sender: b.me, Recipients: keys, Message: r, Size: sub.Size, Now: sub.Accepted, Rand: partRand(sub.Seed, part),
		}, delivery.SendOptions{State: b.queue.SendState(sub.ID, part)})
		return err
	}
	err := send()
	if errors.Is(err, delivery.ErrSendState) {
		// A state for other keys (a recipient published a new one) or
		// a damaged one: the part starts over, still the same mail.
		b.log.Warn("starting a queued mail's part over", "id", sub.ID, "part", part, "err", err)
		if rerr := b.queue.RemoveSendState(sub.ID, part); rerr != nil {
			return rerr
		}
		err = send()
	}
	return err
}

// partRand is the ChaCha20 keystream under LH(LabelOutboxRand, seed ||
// u32(part)).
func partRand(seed [32]byte, part int) io.Reader {
	var in [36]byte
	copy(in[:], seed[:])
	binary.BigEndian.PutUint32(in[32:], uint32(part))
	key := block.LabeledHash(LabelOutboxRand, in[:])
	c, _ := chacha20.NewUnauthenticatedCipher(key[:], make([]byte, chacha20.NonceSize))
	return keystream{c}
}

type keystream struct{ c *chacha20.Cipher }

func (k keystream) Read(p []byte) (int, error) {
	clear(p)
	k.c.XORKeyStream(p, p)
	return len(p), nil
}

// maxBounceOriginal bounds the original a bounce carries in full; a
// larger one is returned as its header section.
const maxBounceOriginal = 16 << 20

// bounce files a notice in INBOX: a final bounce (the mail is given up)
// or a delay notice (it is retried). The original travels with it.
func (b *Bridge) bounce(sub mailbox.Submission, st mailbox.QueueState, cause error, final bool) error {
	_, r, err := b.queue.Open(sub.ID)
	if err != nil {
		return err
	}
	msg, err := io.ReadAll(io.LimitReader(r, min(sub.Size, maxBounceOriginal)))
	r.Close()
	if err != nil {
		return err
	}
	original := mail.Attachment{Name: "original.eml", ContentType: "message/rfc822", Data: msg}
	if sub.Size > maxBounceOriginal {
		head, _, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
		original = mail.Attachment{Name: "original-headers.txt", ContentType: "text/rfc822-headers", Data: append(head, "\r\n"...)}
	}
	var who []string
	relay := relayRecipients(msg)
	for part := range sub.Parts() {
		if st.Done[part] {
			continue
		}
		if part == 0 {
			for _, id := range sub.To {
				if relay != "" {
					who = append(who, gatewayWho(id, relay))
					continue
				}
				who = append(who, identity.FormatAddress(id))
			}
		} else {
			who = append(who, identity.FormatAddress(sub.Bcc[part-1])+" (blind copy)")
		}
	}
	subject := "Delayed mail (still trying): " + mail.Subject(msg)
	text := fmt.Sprintf("Your mail could not be sent yet to:\n\n  %s\n\nbecause: %v\n\n"+
		"The bridge keeps trying (%d attempts so far, at most %d). Nothing needs to be done.\n",
		strings.Join(who, "\n  "), cause, st.Attempts, b.maxAttempts())
	if final {
		subject = "Undelivered mail: " + mail.Subject(msg)
		text = fmt.Sprintf("Your mail was NOT delivered to:\n\n  %s\n\nbecause: %v\n\n"+
			"The bridge gave up after %d attempts. The mail is attached; send it again once the problem is solved.\n",
			strings.Join(who, "\n  "), cause, st.Attempts)
	}
	notice, err := mail.Compose(&mail.Message{
		From:        mail.Mailbox{Name: "flowmail bridge", Address: b.me.ID()},
		To:          []mail.Mailbox{{Address: b.me.ID()}},
		Subject:     subject,
		Text:        text,
		Attachments: []mail.Attachment{original},
		Date:        b.clock.Now(),
	}, crand.Reader)
	if err != nil {
		return err
	}
	in, err := b.store.Folder(mailbox.Inbox)
	if err != nil {
		return err
	}
	_, err = in.Append(bytes.NewReader(notice), 0, b.clock.Now(), int64(len(notice))+1)
	return err
}
