package kademlia

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/transport"
)

// bootstrapParallel bounds the pings Bootstrap has in flight: a saved
// table can hold hundreds of contacts.
const bootstrapParallel = 16

// Ping asks c for a PONG. c.ID may be zero when only the address is
// known. It returns the address c saw this node's packets come from,
// which is also recorded for ObservedAddrs.
func (d *DHT) Ping(ctx context.Context, c transport.Contact) (netip.AddrPort, error) {
	pong, _, err := d.ping(ctx, c)
	return pong.Observed, err
}

func (d *DHT) ping(ctx context.Context, c transport.Contact) (Pong, transport.Peer, error) {
	m, peer, err := d.request(ctx, c, Ping{})
	pong, err := expect[Pong](m, peer, err)
	if err != nil {
		return Pong{}, peer, err
	}
	d.observed.record(pong.Observed, peer.ID, d.now())
	return pong, peer, nil
}

// Bootstrap joins the network through contacts (a static list, or the
// contacts saved by SaveContacts at the last run; IDs may be zero): it
// pings them, so those that answer enter the routing table, and looks up
// the own ID, which fills the near buckets and announces the node to its
// neighbours. A full node then gives each farther bucket that is still
// empty a few contacts (fillBucket): a lookup needs one contact in every
// subtree to be exact, and the rest fills from traffic and Refresh.
// (Looking up a random ID in every farther bucket, as the Kademlia paper
// does, cost 6 times the requests in the 2,000-node simulation.)
func (d *DHT) Bootstrap(ctx context.Context, contacts []transport.Contact) error {
	_, failed := fanOutLimited(ctx, contacts, bootstrapParallel, func(ctx context.Context, c transport.Contact) error {
		_, _, err := d.ping(ctx, c)
		return err
	})
	if err := ctx.Err(); err != nil {
		return err
	}
	if d.table.len() == 0 {
		return fmt.Errorf("%w: bootstrap through %d contacts: %w", ErrNoContacts, len(contacts), errors.Join(failed...))
	}
	if _, _, err := d.Lookup(ctx, d.cfg.ID); err != nil {
		return fmt.Errorf("kademlia: bootstrap lookup of the own ID: %w", err)
	}
	if d.cfg.Client {
		return nil
	}
	for _, i := range d.table.emptyBuckets() {
		d.fillBucket(ctx, i)
	}
	return ctx.Err()
}

// fillBucket gives an empty bucket its first contacts cheaply: it asks
// the known contact closest to a random ID of the bucket for NODES and
// pings up to Alpha of those that fall in the bucket (a contact enters
// the table only once it answers). A lookup is the fallback when that
// yields none.
func (d *DHT) fillBucket(ctx context.Context, i int) {
	target := d.randomIDInBucket(i)
	if near := d.table.closest(target, 1, block.ID{}); len(near) == 1 {
		nodes, err := expect[Nodes](d.request(ctx, near[0], FindNode{Target: target}))
		var in []transport.Contact
		for _, c := range nodes.Contacts {
			if err == nil && len(in) < d.cfg.Alpha && c.ID != d.cfg.ID && d.table.bucketIndex(c.ID) == i && usableAddr(c.Addr, near[0].Addr) {
				in = append(in, c)
			}
		}
		if ok, _ := fanOut(ctx, in, func(ctx context.Context, c transport.Contact) error {
			_, _, err := d.ping(ctx, c)
			return err
		}); ok > 0 {
			return
		}
	}
	if _, _, err := d.Lookup(ctx, target); err != nil {
		d.log.Debug("kademlia: filling an empty bucket failed", "bucket", i, "err", err)
	}
}

// Refresh runs the pending liveness checks (CheckLiveness) and looks up a
// random ID in every bucket not looked up within RefreshInterval. The
// node calls it periodically.
func (d *DHT) Refresh(ctx context.Context) error {
	d.CheckLiveness(ctx)
	return d.refreshBuckets(ctx, d.table.staleBuckets(d.now().Add(-d.cfg.RefreshInterval)))
}

// refreshBuckets looks up a random ID in each of the buckets.
func (d *DHT) refreshBuckets(ctx context.Context, buckets []int) error {
	for _, i := range buckets {
		if _, _, err := d.Lookup(ctx, d.randomIDInBucket(i)); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			d.log.Debug("kademlia: bucket refresh failed", "bucket", i, "err", err)
		}
	}
	return nil
}

// CheckLiveness pings the least recently seen contact of every full
// bucket in which a newcomer waits, and evicts each one that does not
// answer in favour of the newest waiting contact. It returns how many
// were evicted. Then it revalidates: it pings up to K contacts not heard
// from for revalidateAfter, least recently seen first, so live ones stay
// fresh for NODES answers (ContactFreshness) and dead ones are charged
// failures and leave. The node calls it every minute or so: it sends
// nothing when no bucket has a waiting newcomer and no contact is stale.
func (d *DHT) CheckLiveness(ctx context.Context) int {
	_, failed := fanOutLimited(ctx, d.table.pendingChecks(), d.cfg.K, func(ctx context.Context, c transport.Contact) error {
		_, _, err := d.ping(ctx, c)
		if ctx.Err() != nil {
			return nil // abandoned, not failed
		}
		d.table.checked(c, err == nil)
		return err
	})
	stale := d.table.stale(d.now().Add(-revalidateAfter), d.cfg.K)
	fanOutLimited(ctx, stale, d.cfg.K, func(ctx context.Context, c transport.Contact) error {
		_, _, err := d.ping(ctx, c) // an answer refreshes c; a failure is charged
		return err
	})
	return len(failed)
}
