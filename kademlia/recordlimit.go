package kademlia

import (
	"net/netip"
	"sync"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/blockstore"
)

// Limits on the record STOREs one source may make this node verify
// (docs/PROTOCOL.md 15.4 and 11). Verifying the largest key log costs
// about 43 Ed25519 verifications (record's BenchmarkParseFullKeyLog);
// replays of the record a node holds cost a hash and are not counted.
const (
	// RecordRate and RecordBurst bound one node ID: records per second
	// sustained, and at once.
	RecordRate  = 1
	RecordBurst = 30
	// RecordGroupRate and RecordGroupBurst bound one IP group (/24, /48).
	RecordGroupRate  = 4
	RecordGroupBurst = 120
	// maxLimitedSources bounds the buckets kept per kind, as the store's
	// budgets bound their meters (and share the same overflow rule).
	maxLimitedSources = blockstore.MaxMeteredSources
)

// recordLimiter keeps a token bucket per node ID and per IP group. A
// source that finds the table full of buckets still draining shares one
// overflow bucket with every such source, so minting node IDs buys no
// more than one bucket.
type recordLimiter struct {
	mu       sync.Mutex
	nodes    map[block.ID]*tokens
	groups   map[netip.Prefix]*tokens
	overflow [2]tokens
}

// tokens is a bucket's content as of a time; it refills from then on.
type tokens struct {
	n  float64
	at time.Time
}

func (t *tokens) level(now time.Time, rate, burst float64) float64 {
	if t.at.IsZero() {
		return burst
	}
	return min(burst, t.n+max(now.Sub(t.at).Seconds(), 0)*rate)
}

// allow takes one token from node's bucket and from group's (a zero
// group: none), or none and reports false when either is empty.
func (l *recordLimiter) allow(node block.ID, group netip.Prefix, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.nodes == nil {
		l.nodes, l.groups = make(map[block.ID]*tokens), make(map[netip.Prefix]*tokens)
	}
	nb := bucketOf(l.nodes, node, &l.overflow[0], now, RecordRate, RecordBurst)
	var gb *tokens
	if group.IsValid() {
		gb = bucketOf(l.groups, group, &l.overflow[1], now, RecordGroupRate, RecordGroupBurst)
	}
	nl := nb.level(now, RecordRate, RecordBurst)
	gl := float64(RecordGroupBurst)
	if gb != nil {
		gl = gb.level(now, RecordGroupRate, RecordGroupBurst)
	}
	if nl < 1 || gl < 1 {
		return false
	}
	*nb = tokens{n: nl - 1, at: now}
	if gb != nil {
		*gb = tokens{n: gl - 1, at: now}
	}
	return true
}

// bucketOf returns key's bucket, making one when the table has room
// (after forgetting buckets that refilled, which hold no state), or the
// shared overflow bucket.
func bucketOf[K comparable](m map[K]*tokens, key K, overflow *tokens, now time.Time, rate, burst float64) *tokens {
	if b, ok := m[key]; ok {
		return b
	}
	if len(m) >= maxLimitedSources {
		for k, b := range m {
			if b.level(now, rate, burst) >= burst {
				delete(m, k)
			}
		}
	}
	if len(m) >= maxLimitedSources {
		return overflow
	}
	b := &tokens{}
	m[key] = b
	return b
}
