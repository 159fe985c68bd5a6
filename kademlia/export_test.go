package kademlia

import (
	"context"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/transport"
)

// What the external tests (package kademlia_test, which run on kadsim)
// reach inside a DHT for: setting up a known state without traffic, and
// the fan-outs on their own.

// Seen enters c into d's routing table as if it had answered at now.
func Seen(d *DHT, c transport.Contact, now time.Time) bool { return d.table.seen(c, now) }

// ChargeFailure records a failed request to c in d's routing table.
// Forget drops id from d's routing table.
func Forget(d *DHT, id block.ID) { d.table.remove(id) }

func ChargeFailure(d *DHT, c transport.Contact) { d.table.failed(c) }

// ForgetContacts empties d's routing table.
func ForgetContacts(d *DHT) { d.table = newTable(d.cfg.ID, d.table.limits, d.now()) }

// SetK changes the K of d's lookups (its table keeps its bucket size).
func SetK(d *DHT, k int) { d.cfg.K = k }

// RequestAll sends m (STORE or DELETE) to every contact at once.
func RequestAll(ctx context.Context, d *DHT, cs []transport.Contact, m Message) (int, []error) {
	return d.requestAll(ctx, cs, m)
}

// ListAll lists the zero-bit prefix of target at every contact.
func ListAll(ctx context.Context, d *DHT, cs []transport.Contact, target block.ID) (int, []error) {
	return d.listAll(ctx, cs, &listCollector{target: target, entries: make(map[block.ID]*listRecord)})
}

// Test blocks (handler_test.go).
var (
	IndexBlock            = indexBlock
	DataBlockWithDeletion = dataBlockWithDeletion
	TestID                = testID
)
