package maillist

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/naming"
)

// ErrPost: a post whose header the list cannot re-send.
var ErrPost = errors.New("maillist: post cannot be re-sent")

// UnsubscribeSubject is the subject of a member's mail to the list that
// takes it off the list (List-Unsubscribe points at it).
const UnsubscribeSubject = "unsubscribe"

// Post is what the list read of a post's header.
type Post struct {
	Poster      block.ID
	Subject     string
	Unsubscribe bool // the subject asks to leave the list: not re-sent
}

// replaced are the fields a list drops from a post's header before it
// writes its own (spec 17.7): those that name the sender or a list, and
// a carried name certificate, which names the poster and would not
// match the list's signature.
var replaced = []string{
	"From", "Sender", "Reply-To", "Bcc", "Return-Path", "X-Original-From", "Precedence",
	"List-Id", "List-Post", "List-Unsubscribe", "List-Subscribe", "List-Help", "List-Owner", "List-Archive",
	naming.CertHeader,
}

// Repost reads post, a message (RFC 5322, CRLF) that poster sent to the
// list whose address is list, and writes to w the message the list
// re-sends to its members (spec 17.7): the same body and header, but
// From the list (the signer members verify) with the poster's name and
// " via NAME", Reply-To and X-Original-From the poster, and List-Id,
// List-Post, List-Unsubscribe and Precedence as a list sets them. It
// checks that the post's From names poster, and that the new header
// stays within mail.MaxHeaderSize.
func Repost(w io.Writer, post io.Reader, poster, list block.ID, name string) (Post, error) {
	// The header is read from at most MaxHeaderSize bytes (spec 9.1);
	// the limit is lifted for the body, which is copied as it is.
	lr := &io.LimitedReader{R: post, N: mail.MaxHeaderSize}
	br := bufio.NewReader(lr)
	hdr, err := textproto.ReadHeader(br)
	if err != nil {
		return Post{}, fmt.Errorf("%w: the header does not parse: %v", ErrPost, err)
	}
	lr.N = mail.MaxMessageSize
	h := gomail.Header{Header: message.Header{Header: hdr}}
	from, err := h.AddressList("From")
	if err != nil || len(from) != 1 {
		return Post{}, fmt.Errorf("%w: %w: want one mailbox in From", ErrPost, mail.ErrFromHeader)
	}
	claimed, err := mail.ParseHeaderAddress(from[0].Address)
	if err != nil {
		return Post{}, fmt.Errorf("%w: %w: %v", ErrPost, mail.ErrFromHeader, err)
	}
	if claimed != poster {
		return Post{}, fmt.Errorf("%w: %w: From names %s, the post is signed by %s", ErrPost, mail.ErrFromMismatch, identity.FormatAddress(claimed), identity.FormatAddress(poster))
	}
	subject, _ := h.Subject()
	p := Post{Poster: poster, Subject: subject, Unsubscribe: strings.EqualFold(strings.TrimSpace(subject), UnsubscribeSubject)}

	shown := from[0].Name
	if shown == "" {
		shown = identity.FormatAddress(poster)[:12] + "…"
	}
	posterBox := (&gomail.Address{Name: from[0].Name, Address: mail.HeaderAddress(poster)}).String()
	listAddr := mail.HeaderAddress(list)
	for _, k := range replaced {
		h.Del(k)
	}
	h.Set("Precedence", "list")
	h.Set("List-Unsubscribe", "<mailto:"+listAddr+"?subject="+UnsubscribeSubject+">")
	h.Set("List-Post", "<mailto:"+listAddr+">")
	h.Set("List-Id", fmt.Sprintf("%s <%s.%s.%s>", name, name, identity.FormatAddress(list), mail.MailDomain))
	h.Set("X-Original-From", posterBox)
	h.Set("Reply-To", posterBox)
	h.Set("From", mail.Mailbox{Name: shown + " via " + name, Address: list}.String())
	var head bytes.Buffer
	if err := textproto.WriteHeader(&head, h.Header.Header); err != nil {
		return Post{}, fmt.Errorf("%w: %v", ErrPost, err)
	}
	if head.Len() > mail.MaxHeaderSize {
		return Post{}, fmt.Errorf("%w: the header would be %d bytes, over %d", ErrPost, head.Len(), mail.MaxHeaderSize)
	}
	if _, err := w.Write(head.Bytes()); err != nil {
		return Post{}, err
	}
	if _, err := io.Copy(w, br); err != nil {
		return Post{}, err
	}
	return p, nil
}
