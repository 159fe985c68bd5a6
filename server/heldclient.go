package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/identity"
)

// Hold asks the server to collect owner's mail and returns what it says.
func (c *Client) Hold(ctx context.Context, owner block.ID) (HoldStatus, error) {
	a, err := c.call(ctx, Hold{Owner: owner})
	if err != nil {
		return HoldStatus{}, err
	}
	st, ok := a.(HoldStatus)
	if !ok {
		return HoldStatus{}, fmt.Errorf("%w: %T to HOLD", ErrBadAnswer, a)
	}
	return st, nil
}

// HeldList returns every index ID the server holds for owner, page by
// page, at most maxIDs of them.
func (c *Client) HeldList(ctx context.Context, owner block.ID, maxIDs int) ([]block.ID, error) {
	var all []block.ID
	var after block.ID
	for len(all) < maxIDs {
		a, err := c.call(ctx, HeldList{Owner: owner, After: after})
		if err != nil {
			return all, err
		}
		page, ok := a.(HeldIDs)
		if !ok {
			return all, fmt.Errorf("%w: %T to HELD_LIST", ErrBadAnswer, a)
		}
		if len(page.IDs) > 0 && !after.IsZero() && !block.Less(after, page.IDs[0]) {
			return all, fmt.Errorf("%w: a page that does not follow the last", ErrBadAnswer)
		}
		all = append(all, page.IDs...)
		if !page.More || len(page.IDs) == 0 {
			break
		}
		after = page.IDs[len(page.IDs)-1]
	}
	return all, nil
}

// HeldGet returns one block the server holds for owner, checked against
// its ID.
func (c *Client) HeldGet(ctx context.Context, owner, id block.ID) ([]byte, error) {
	a, err := c.call(ctx, HeldGet{Owner: owner, ID: id})
	if err != nil {
		return nil, err
	}
	b, ok := a.(HeldBlock)
	if !ok {
		return nil, fmt.Errorf("%w: %T to HELD_GET", ErrBadAnswer, a)
	}
	if block.Sum(b.Block) != id {
		return nil, fmt.Errorf("%w: block %s: the server sent other bytes", ErrBadAnswer, id.Short())
	}
	return b.Block, nil
}

// HeldConfirm tells the server, signed by me's current key, that me's
// device has the mails of ids, so it may drop them. server is the
// server's node ID (the signature names it).
func (c *Client) HeldConfirm(ctx context.Context, me *identity.Identity, server block.ID, ids []block.ID, now time.Time) error {
	for len(ids) > 0 {
		n := min(len(ids), MaxHeldIDs)
		m := HeldConfirm{Owner: me.ID(), Time: uint64(now.Unix()), IDs: sortedIDs(ids[:n])}
		m.Signature = me.Sign(LabelConfirm, ConfirmSigned(server, m))
		a, err := c.call(ctx, m)
		if err != nil {
			return err
		}
		if a != nil {
			return fmt.Errorf("%w: %T to HELD_CONFIRM", ErrBadAnswer, a)
		}
		ids = ids[n:]
	}
	return nil
}

func sortedIDs(ids []block.ID) []block.ID {
	out := append([]block.ID(nil), ids...)
	for i := 1; i < len(out); i++ { // insertion sort: a page is small
		for j := i; j > 0 && block.Less(out[j], out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	// Drop duplicates: the wire wants strictly ascending IDs.
	w := 0
	for i := range out {
		if i == 0 || out[i] != out[w-1] {
			out[w] = out[i]
			w++
		}
	}
	return out[:w]
}

// Fallback is the part of the DHT a HeldNetwork falls back on.
type Fallback interface {
	Put(ctx context.Context, blk []byte, lifetime time.Duration) error
	Get(ctx context.Context, id block.ID) ([]byte, error)
	List(ctx context.Context, target block.ID, bits int, since time.Time) ([]block.ID, error)
	Delete(ctx context.Context, id block.ID, preimage [32]byte) error
}

// HeldNetwork is a delivery.Network that lists an owner's mail at its
// delegated server and gets blocks there first, from the DHT when the
// server does not hold them. Put and Delete go to the DHT. Listed holds
// what the server listed, for the confirmation after the fetch.
type HeldNetwork struct {
	Client *Client
	Owner  block.ID
	DHT    Fallback
	Listed []block.ID
}

// MaxHeldFetch bounds the IDs one fetch lists from a server.
const MaxHeldFetch = 100 * MaxHeldIDs

// List lists what the server holds for the owner; target, bits and
// since are the DHT's and do not apply (the server drops only what was
// confirmed, so it lists everything it holds).
func (n *HeldNetwork) List(ctx context.Context, target block.ID, bits int, since time.Time) ([]block.ID, error) {
	ids, err := n.Client.HeldList(ctx, n.Owner, MaxHeldFetch)
	n.Listed = append(n.Listed, ids...)
	return ids, err
}

// Get asks the server, then the DHT.
func (n *HeldNetwork) Get(ctx context.Context, id block.ID) ([]byte, error) {
	b, err := n.Client.HeldGet(ctx, n.Owner, id)
	if err == nil {
		return b, nil
	}
	if !errors.Is(err, ErrNotHeld) || n.DHT == nil {
		return nil, err
	}
	return n.DHT.Get(ctx, id)
}

func (n *HeldNetwork) Put(ctx context.Context, blk []byte, lifetime time.Duration) error {
	if n.DHT == nil {
		return errors.New("server: no network to store in")
	}
	return n.DHT.Put(ctx, blk, lifetime)
}

func (n *HeldNetwork) Delete(ctx context.Context, id block.ID, preimage [32]byte) error {
	if n.DHT == nil {
		return nil
	}
	return n.DHT.Delete(ctx, id, preimage)
}

// DeleteData deletes a mail's shard at its few holders when the DHT
// can (delivery.DataDeleter), else as Delete.
func (n *HeldNetwork) DeleteData(ctx context.Context, id block.ID, preimage [32]byte) error {
	if dd, ok := n.DHT.(delivery.DataDeleter); ok {
		return dd.DeleteData(ctx, id, preimage)
	}
	return n.Delete(ctx, id, preimage)
}
