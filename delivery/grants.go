package delivery

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/grant"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
)

// MaxClaimsPerFetch bounds the grant claims (index blocks without the
// full work) one Fetch opens (spec 17.5). The rest wait for the next
// Fetch, whose LIST starts where this one did.
const MaxClaimsPerFetch = 256

// FetchWork counts what one Fetch spent on index blocks, the figures
// spec 17.5 bounds.
type FetchWork struct {
	Fetched        int // index blocks fetched (GET), at most maxOpenPerFetch
	Decapsulations int // HPKE decapsulations, each with one export of 32 bytes
	Claims         int // blocks without the full work whose manifest was opened, at most MaxClaimsPerFetch
	ClaimOpens     int // AEAD opens those took: at most Claims times the keys held
	ClaimBytes     int64
}

// Signals from fetchOne to Fetch about grant claims: not recorded, so
// the block is fetched again (next time, for one over the cap).
var (
	errClaimLater   = errors.New("delivery: a grant claim, opened after the mail with the full work")
	errClaimOverCap = errors.New("delivery: over the grant claims one fetch opens")
)

// claims collects the index blocks without the full work during the
// first pass over a fetch's blocks; Fetch opens them afterwards.
type claims struct {
	take   []*mail.Index
	closed bool // the first pass is over: no more are taken
	max    int  // 0 means MaxClaimsPerFetch
}

func (c *claims) add(x *mail.Index) error {
	if c.closed || len(c.take) >= cmp.Or(c.max, MaxClaimsPerFetch) {
		return errClaimOverCap
	}
	c.take = append(c.take, x)
	return errClaimLater
}

// getIndex fetches the index block id and unmasks it (spec 6): it must
// be routable to me before it is fetched, hash to id, and parse.
func getIndex(ctx context.Context, net Network, me *identity.Identity, id block.ID, work *FetchWork) (*mail.Index, mailbox.Outcome, error) {
	if err := mail.CheckRoute(me, id); err != nil {
		return nil, mailbox.OutcomeRejected, err // never fetched, let alone opened (spec 6)
	}
	blk, err := net.Get(ctx, id)
	if err != nil {
		return nil, mailbox.OutcomeMissing, fmt.Errorf("getting the index block: %w", err)
	}
	work.Fetched++
	if got := block.Sum(blk); got != id {
		// The network's fault, not the mail's: another holder may do better.
		return nil, mailbox.OutcomeDeferred, fmt.Errorf("%w: the network returned bytes that hash to %s", mail.ErrIndexBlock, got.Short())
	}
	x, err := mail.UnmaskIndex(me, id, blk)
	if x != nil {
		work.Decapsulations += x.Decapsulations()
	}
	if err != nil {
		return nil, mailbox.OutcomeRejected, err
	}
	return x, 0, nil
}

// checkIndex opens x's manifest and, for a block without the full work,
// checks its grant claim against grants (spec 17.4 steps 1 to 4). It
// returns the grant the mail comes under (nil with the full work), and
// the manifest beside a refusal, so the block can be deleted.
func checkIndex(x *mail.Index, grants *grant.Table, work *FetchWork) (*mail.Manifest, *grant.Grant, error) {
	if !x.FullWork {
		work.Claims++
		work.ClaimOpens += x.Keys()
		work.ClaimBytes += int64(x.Keys()) * int64(x.SealedLen())
	}
	man, err := x.Open()
	if err != nil || x.FullWork {
		return man, nil, err
	}
	if grants == nil {
		if !man.HasClaim() {
			return man, nil, fmt.Errorf("%w: %w", grant.ErrNoWork, mail.ErrProofOfWork)
		}
		return man, nil, fmt.Errorf("%w: this mailbox has issued no grants", grant.ErrUnknown)
	}
	g, err := grants.Check(x, man)
	if errors.Is(err, grant.ErrNoWork) {
		err = fmt.Errorf("%w: %w", err, mail.ErrProofOfWork)
	}
	return man, g, err
}
