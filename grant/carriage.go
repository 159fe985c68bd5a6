package grant

import (
	"errors"
	"fmt"
	"io"
	"mime"

	gomail "github.com/emersion/go-message/mail"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/mail"
)

// MediaType is the MIME type of the part a grant travels in (spec 17.2).
const MediaType = "application/vnd.flowmail.grant"

// maxParts bounds the parts FromMessage looks at, and so its work on a
// message made of nothing but parts.
const maxParts = 64

// Attachment is the grant as a part of a mail from its granter to its
// grantee (spec 17.2).
func (g *Grant) Attachment() mail.Attachment {
	return mail.Attachment{Name: "grant.flowmail", ContentType: MediaType, Data: g.Encode()}
}

// FromMessage returns the grants in the parts of type MediaType of a
// delivered message whose verified signer is signer, sent to me: only
// grants from signer to me (spec 17.2). A message without such a part
// gives ErrNoGrants; a part that does not parse, or a grant between
// others, an error (wrapping ErrNotOurs for the latter).
func FromMessage(r io.Reader, signer, me block.ID) ([]*Grant, error) {
	mr, err := gomail.CreateReader(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoGrants, err)
	}
	defer mr.Close()
	var out []*Grant
	for range maxParts {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("grant: reading the message: %w", err)
		}
		ct, _, err := mime.ParseMediaType(p.Header.Get("Content-Type"))
		if err != nil || ct != MediaType {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(p.Body, Size+1)) // bounded: one grant and a byte to tell it is more
		if err != nil {
			return nil, fmt.Errorf("grant: reading the grant part: %w", err)
		}
		g, err := Parse(b)
		if err != nil {
			return nil, err
		}
		if g.Granter != signer || g.Grantee != me {
			return nil, fmt.Errorf("%w: a grant from %s to %s in a mail signed by %s", ErrNotOurs, g.Granter.Short(), g.Grantee.Short(), signer.Short())
		}
		out = append(out, g)
	}
	if len(out) == 0 {
		return nil, ErrNoGrants
	}
	return out, nil
}
