package gateway

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"mime"
	"sort"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/naming"
)

// bounce tells sender, over the network, which recipients its mail did
// not reach and why (20.6). The key "" is the whole mail.
func (g *Gateway) bounce(ctx context.Context, sender block.ID, subject string, failed map[string]string) error {
	msg := g.bounceMessage(sender, subject, failed)
	lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	k, _, err := delivery.ResolveRecipient(lctx, g.cfg.Network, g.cfg.KeyLogs, sender)
	cancel()
	if err != nil {
		return err
	}
	if int(k.Difficulty) > MaxBounceDifficulty {
		return fmt.Errorf("%w: the sender's key demands proof of work %d, over the %d the gateway pays for a bounce", ErrNoBounce, k.Difficulty, MaxBounceDifficulty)
	}
	sctx, cancel := context.WithTimeout(ctx, sendTimeout)
	defer cancel()
	_, err = delivery.Send(sctx, g.cfg.Network, g.codec, mail.BuildInput{
		Sender: g.cfg.Identity, Recipients: []*identity.PublicKey{k}, Message: bytes.NewReader(msg), Size: int64(len(msg)), Now: g.clock.Now(),
	}, delivery.SendOptions{})
	return err
}

func (g *Gateway) bounceMessage(sender block.ID, subject string, failed map[string]string) []byte {
	var b bytes.Buffer
	b.WriteString(naming.CarriedField(g.cfg.Certificate))
	var id [12]byte
	crand.Read(id[:])
	writeField(&b, "From", "<"+mail.HeaderAddress(g.cfg.Identity.ID())+">")
	writeField(&b, "To", "<"+mail.HeaderAddress(sender)+">")
	writeField(&b, "Subject", mime.QEncoding.Encode("utf-8", "Undelivered: "+clip(subject)))
	writeField(&b, "Date", g.clock.Now().UTC().Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	writeField(&b, "Message-ID", "<"+hex.EncodeToString(id[:])+"@"+g.cfg.Domain+">")
	writeField(&b, "Auto-Submitted", "auto-replied")
	writeField(&b, "MIME-Version", "1.0")
	writeField(&b, "Content-Type", "text/plain; charset=utf-8")
	b.WriteString("\r\n")
	fmt.Fprintf(&b, "The SMTP gateway of %s could not deliver your mail %q.\r\n\r\n", g.cfg.Domain, clip(subject))
	keys := make([]string, 0, len(failed))
	for k := range failed {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		who := k
		if who == "" {
			who = "all recipients"
		}
		fmt.Fprintf(&b, "%s: %s\r\n", who, replyText(fmt.Errorf("%s", failed[k])))
	}
	return b.Bytes()
}
