package maillist

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/grant"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
)

// RelayOptions tune Relay.
type RelayOptions struct {
	// Spool is the directory where the re-sent message is written while
	// it is sent. Required.
	Spool string
	// Now is the signing time. Required.
	Now time.Time
	// Lookup returns a member's verified pubkey; nil means
	// delivery.LookupPubkey on the network.
	Lookup func(ctx context.Context, member block.ID) (*identity.PublicKey, error)
	// Progress, if set, follows each member's mail.
	Progress func(member block.ID, p mail.Progress)
	// Rand is the randomness of the mails; nil means crypto/rand.
	Rand io.Reader
}

// Copy is the outcome of re-sending a post to one member.
type Copy struct {
	Member  block.ID
	Granted bool  // sent under the member's grant: ground to the public prefix only
	Err     error // nil: stored in the network
}

// RelayReport is the outcome of one post.
type RelayReport struct {
	Post   Post
	Copies []Copy // one per member, in roster order; none for an unsubscribe
}

// Relay re-sends the post d, which the list fetched, to every member of
// r (spec 17.7): only a member's post is re-sent (ErrNotMember
// otherwise); a post whose subject is UnsubscribeSubject removes its
// poster from r instead (the caller saves r). Each member gets a mail of
// its own, signed by list, claiming the grant the list holds from that
// member in grants (nil: none), so it is ground to the member's public
// prefix only; without a grant the mail carries the member's full work.
// A member that fails (no key, the network) does not stop the others:
// its Copy says why. The returned error is for what stops the whole
// post (the spool, the post's file, ctx).
func Relay(ctx context.Context, net delivery.Network, c *mail.Codec, list *identity.Identity, r *Roster, grants *grant.Table, d delivery.Delivered, opt RelayOptions) (*RelayReport, error) {
	if opt.Spool == "" || opt.Now.IsZero() {
		return nil, errors.New("maillist: relay: no spool directory or current time given")
	}
	if !r.Has(d.From) {
		return nil, fmt.Errorf("%w: the post is from %s", ErrNotMember, identity.FormatAddress(d.From))
	}
	in, err := os.Open(d.Path)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	if err := os.MkdirAll(opt.Spool, 0o700); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(opt.Spool, "post-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	p, err := Repost(f, in, d.From, list.ID(), r.Name)
	if err != nil {
		return nil, err
	}
	rep := &RelayReport{Post: p}
	if p.Unsubscribe {
		r.Remove(d.From)
		return rep, nil
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, err
	}
	lookup := opt.Lookup
	if lookup == nil {
		lookup = func(ctx context.Context, id block.ID) (*identity.PublicKey, error) {
			return delivery.LookupPubkey(ctx, net, id)
		}
	}
	for _, m := range r.Members {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		cp := Copy{Member: m}
		cp.Granted, cp.Err = relayTo(ctx, net, c, list, grants, m, io.NewSectionReader(f, 0, size), size, lookup, opt)
		if cp.Err != nil && ctx.Err() != nil {
			return rep, ctx.Err()
		}
		rep.Copies = append(rep.Copies, cp)
	}
	return rep, nil
}

// relayTo sends the re-sent message msg to one member.
func relayTo(ctx context.Context, net delivery.Network, c *mail.Codec, list *identity.Identity, grants *grant.Table, m block.ID, msg io.Reader, size int64,
	lookup func(context.Context, block.ID) (*identity.PublicKey, error), opt RelayOptions) (bool, error) {
	k, err := lookup(ctx, m)
	if err != nil {
		return false, err
	}
	keys := []*identity.PublicKey{k}
	var claims []*mail.GrantClaim
	if grants != nil {
		claims = grants.Claims(keys)
	}
	so := delivery.SendOptions{}
	if opt.Progress != nil {
		so.Progress = func(p mail.Progress) { opt.Progress(m, p) }
	}
	_, err = delivery.Send(ctx, net, c, mail.BuildInput{Sender: list, Recipients: keys, Grants: claims, Message: msg, Size: size, Now: opt.Now, Rand: opt.Rand}, so)
	return claims != nil, err
}
