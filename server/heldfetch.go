package server

import (
	"context"
	"fmt"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
)

// HeldFetch is the outcome of FetchHeld.
type HeldFetch struct {
	*delivery.FetchReport
	// FromServer is set when the server answered, and its mail came
	// through it; when it is not, ServerErr says why and the fetch went
	// to the DHT alone.
	FromServer bool
	ServerErr  error
	// NetworkErr is set when the DHT fetch after the server's failed:
	// what the server held was delivered; what it did not waits in the
	// DHT for the next fetch.
	NetworkErr error
	// Confirmed counts the index IDs the server was told it may drop;
	// ConfirmErr is set when telling it failed (it keeps them, and the
	// next fetch confirms them: they are settled in st by then).
	Confirmed  int
	ConfirmErr error
}

// FetchHeld fetches me's mail from its delegated server and from the
// DHT (section 21.6): it lists what the server holds and gets each block
// there (from dht when the server lacks one), delivers as delivery.Fetch
// does, confirms to the server every listed mail that st has settled,
// so the server drops them, and then fetches from dht as delivery.Fetch
// does: mail the server does not hold (sent since its last round, over
// its quota, in a gap of the delegation) arrives too, and what the
// server delivered is skipped there, settled in st under the same index
// block ID. When the server cannot be reached it fetches from dht alone.
// serverID is the server's node address (the confirmation names it).
func FetchHeld(ctx context.Context, c *Client, serverID block.ID, dht Fallback, codec *mail.Codec, me *identity.Identity, st *mailbox.State, opt delivery.FetchOptions) (*HeldFetch, error) {
	out := &HeldFetch{}
	if _, err := c.HeldList(ctx, me.ID(), 1); err != nil && ctx.Err() == nil {
		// The server is down, or holds nothing for me (the delegation
		// ended or it never took it): the DHT has the mail.
		out.ServerErr = err
		rep, err := delivery.Fetch(ctx, dht, codec, me, st, opt)
		out.FetchReport = rep
		return out, err
	}
	// What the server lists is not a LIST of the DHT: the time of the
	// last DHT listing stays, so a later DHT fetch misses nothing.
	last := st.LastList()
	hn := &HeldNetwork{Client: c, Owner: me.ID(), DHT: dht}
	rep, err := delivery.Fetch(ctx, hn, codec, me, st, opt)
	st.SetLastList(last)
	out.FetchReport, out.FromServer = rep, true
	if err != nil {
		return out, err
	}
	if err := st.Save(); err != nil {
		return out, err
	}
	var done []block.ID
	for _, id := range hn.Listed {
		if st.Settled(id) {
			done = append(done, id)
		}
	}
	if len(done) > 0 {
		if err := c.HeldConfirm(ctx, me, serverID, done, opt.Now); err != nil {
			out.ConfirmErr = fmt.Errorf("telling the server it may drop %d mails: %w", len(done), err)
		} else {
			out.Confirmed = len(done)
		}
	}
	rep, err = delivery.Fetch(ctx, dht, codec, me, st, opt)
	out.FetchReport.Add(rep)
	if err != nil {
		if ctx.Err() != nil {
			return out, err
		}
		out.NetworkErr = err
	}
	return out, nil
}
