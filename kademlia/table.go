package kademlia

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/transport"
)

// numBuckets is one bucket per possible common prefix length with the own
// ID; a prefix of 256 bits is the node itself, which is never stored.
const numBuckets = block.IDSize * 8

// ContactInfo is a routing-table entry as status pages and metrics see it.
type ContactInfo struct {
	transport.Contact
	Bucket   int // common prefix length with the own ID
	Added    time.Time
	LastSeen time.Time
	Failures int // consecutive failed requests
}

// entry is a routing-table contact as the table keeps it: compact, since
// a simulation holds a hundred thousand tables. Times are Unix
// nanoseconds.
type entry struct {
	transport.Contact
	added, lastSeen int64
	failures        int
}

func (e *entry) info(self block.ID) ContactInfo {
	return ContactInfo{Contact: e.Contact, Bucket: block.CommonPrefixLen(self, e.ID), Added: time.Unix(0, e.added), LastSeen: time.Unix(0, e.lastSeen), Failures: e.failures}
}

// tableLimits are the routing table's knobs (see Config).
type tableLimits struct {
	k           int
	cache       int // replacement cache entries per bucket
	maxFailures int
	bucketIP    int // contacts per IP group in one bucket; < 0: no limit
	tableIP     int // contacts per IP group in the table; < 0: no limit
}

type bucket struct {
	// Entries are held by value: closestAnswer and indexOf read a whole
	// bucket per request, and one allocation per entry made each read a
	// cache miss (a fifth of a simulation's time with groupFits).
	live []entry // least recently seen first
	// cache holds contacts that found the bucket full, most recently seen
	// last; one of them takes the place of a live contact that fails.
	cache []entry
	// checking is the live contact whose liveness a newcomer waits on:
	// set when a contact lands in a full bucket's cache, cleared when the
	// ping is handed out (pendingChecks) and answered (checked).
	needsCheck bool
	checking   block.ID
	lastLookup int64 // Unix nanoseconds
}

// table is the routing table: K-buckets by common prefix length with the
// own ID. It is safe for concurrent use; it does no I/O. Liveness checks
// are handed out by pendingChecks and their outcome reported by checked,
// so the mutex is never held across the network.
type table struct {
	self   block.ID
	limits tableLimits

	mu sync.Mutex
	// buckets grow on demand: a table of n nodes fills about log2(n)
	// buckets, and the deeper ones would be empty. A bucket not yet
	// allocated is empty and was last looked up at created.
	buckets []bucket
	created int64
	size    int
	top     int      // deepest bucket that may hold live contacts
	groups  []uint64 // a word per live contact: its bucket and IP group (groupFits)
	dropped droppedSet
}

// droppedMemory bounds the contacts remembered as dropped for failing:
// enough for a mass failure of a few hundred of the contacts a node meets
// in lookups, 48 KiB of contacts.
const droppedMemory = 1024

// droppedSet remembers, oldest out first, contacts (an ID at an address)
// the table dropped because requests to them failed, until they are seen
// again. Other nodes' NODES answers go on naming a dead node for as long
// as those nodes have not asked it themselves; this memory lets lookups
// treat it as failing at once instead of waiting on it again. A contact
// with a zero address stands for its ID at any address.
type droppedSet struct {
	ids   map[transport.Contact]uint64 // the sequence number of the entry in order
	order []droppedEntry               // oldest first; entries of contacts seen again linger
	seq   uint64
}

type droppedEntry struct {
	c   transport.Contact
	seq uint64
}

func (d *droppedSet) add(c transport.Contact) {
	c = normalContact(c)
	if d.has(c) {
		return
	}
	if d.ids == nil {
		d.ids = make(map[transport.Contact]uint64)
	}
	current := func(e droppedEntry) bool { s, ok := d.ids[e.c]; return ok && s == e.seq }
	if len(d.order) >= droppedMemory {
		d.order = slices.DeleteFunc(d.order, func(e droppedEntry) bool { return !current(e) })
	}
	if len(d.order) >= droppedMemory {
		delete(d.ids, d.order[0].c)
		d.order = d.order[1:]
	}
	d.seq++
	d.ids[c] = d.seq
	d.order = append(d.order, droppedEntry{c, d.seq})
}

// remove forgets c, which answered, and any mark on its ID alone.
func (d *droppedSet) remove(c transport.Contact) {
	delete(d.ids, normalContact(c))
	delete(d.ids, transport.Contact{ID: c.ID})
}

func (d *droppedSet) has(c transport.Contact) bool {
	_, ok := d.ids[normalContact(c)]
	if !ok {
		_, ok = d.ids[transport.Contact{ID: c.ID}]
	}
	return ok
}

// normalContact writes c's address unmapped, so that an IPv4 address
// compares equal however it was encoded.
func normalContact(c transport.Contact) transport.Contact {
	if c.Addr.IsValid() {
		c.Addr = netip.AddrPortFrom(c.Addr.Addr().Unmap(), c.Addr.Port())
	}
	return c
}

// addrMatches reports whether a failure at addr concerns a contact held
// at held: the same address (however encoded), or addr zero, which names
// the peer itself (its verified answer was bad) wherever it is.
func addrMatches(held, addr netip.AddrPort) bool {
	return !addr.IsValid() || normalContact(transport.Contact{Addr: held}) == normalContact(transport.Contact{Addr: addr})
}

// newTable returns an empty table; its buckets count as looked up at now,
// so the first refresh comes an interval after the bootstrap.
func newTable(self block.ID, l tableLimits, now time.Time) *table {
	return &table{self: self, limits: l, created: now.UnixNano()}
}

// bucketAt returns bucket i, allocating the buckets up to it.
func (t *table) bucketAt(i int) *bucket {
	for len(t.buckets) <= i {
		t.buckets = append(t.buckets, bucket{lastLookup: t.created})
	}
	return &t.buckets[i]
}

// peek returns bucket i, or nil when it was never allocated (empty).
func (t *table) peek(i int) *bucket {
	if i >= len(t.buckets) {
		return nil
	}
	return &t.buckets[i]
}

// liveIn returns the live contacts of bucket i.
func (t *table) liveIn(i int) []entry {
	if b := t.peek(i); b != nil {
		return b.live
	}
	return nil
}

// ipGroup is the prefix whose hosts are likely under one operator: /24
// for IPv4, /48 for IPv6.
func ipGroup(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 48
	if a.Is4() {
		bits = 24
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

func (t *table) bucketIndex(id block.ID) int {
	return block.CommonPrefixLen(t.self, id)
}

func indexOf(es []entry, id block.ID) int {
	for i := range es {
		if es[i].ID == id {
			return i
		}
	}
	return -1
}

// appendEntry appends e to es, growing es to at most limit entries at
// once: a bucket's slices stop at K (live) or the cache's size, and most
// of a table's buckets are full.
func appendEntry(es []entry, e entry, limit int) []entry {
	if len(es) == cap(es) && len(es) < limit {
		grown := make([]entry, len(es), min(len(es)+4, limit))
		copy(grown, es)
		es = grown
	}
	return append(es, e)
}

// groupFits reports whether one more live contact of group g may enter
// bucket bi.
func (t *table) groupFits(bi int, g netip.Prefix) bool {
	key := groupKey(g)
	if key == 0 {
		return true // no group: no contact counts in it
	}
	inTable, inBucket := 0, 0
	for _, w := range t.groups {
		if w&groupMask == key {
			inTable++
			if int(w>>bucketShift) == bi {
				inBucket++
			}
		}
	}
	return (t.limits.tableIP < 0 || inTable < t.limits.tableIP) &&
		(t.limits.bucketIP < 0 || inBucket < t.limits.bucketIP)
}

// The table counts IP groups by scanning one word per live contact
// (groups), not its entries: visiting every entry for every newcomer was
// a tenth of a simulation's time. A word holds the contact's bucket
// (0-255; only the own ID has 256) above bucketShift and, under
// groupMask, its group: bit 49 set for a group at all, bit 48 for IPv4,
// then the /24 (IPv4) or /48 (IPv6) prefix.
const (
	bucketShift = 56
	groupMask   = 1<<bucketShift - 1
)

// groupKey is g as a group word, 0 when g is no group.
func groupKey(g netip.Prefix) uint64 {
	if !g.IsValid() {
		return 0
	}
	return addrGroupKey(g.Addr())
}

// addrGroupKey is the group word of an address: 0 for one that no group
// contains (invalid, or zoned: see netip.Prefix.Contains).
func addrGroupKey(a netip.Addr) uint64 {
	a = a.Unmap()
	switch {
	case !a.IsValid() || a.Zone() != "":
		return 0
	case a.Is4():
		b := a.As4()
		return 1<<49 | 1<<48 | uint64(b[0])<<16 | uint64(b[1])<<8 | uint64(b[2])
	}
	b := a.As16()
	return 1<<49 | uint64(b[0])<<40 | uint64(b[1])<<32 | uint64(b[2])<<24 | uint64(b[3])<<16 | uint64(b[4])<<8 | uint64(b[5])
}

// liveWord is the groups word of live entry e.
func (t *table) liveWord(e *entry) uint64 {
	return uint64(t.bucketIndex(e.ID))<<bucketShift | addrGroupKey(e.Addr.Addr())
}

func (t *table) addLive(b *bucket, e entry) {
	t.top = max(t.top, t.bucketIndex(e.ID))
	b.live = appendEntry(b.live, e, t.limits.k)
	t.groups = append(t.groups, t.liveWord(&e))
	t.size++
}

func (t *table) dropLive(b *bucket, i int) {
	e := b.live[i]
	b.live = slices.Delete(b.live, i, i+1)
	if j := slices.Index(t.groups, t.liveWord(&e)); j >= 0 {
		last := len(t.groups) - 1
		t.groups[j] = t.groups[last]
		t.groups = t.groups[:last]
	}
	t.size--
	if b.checking == e.ID {
		b.checking = block.ID{}
	}
}

// seen records that a verified full node with contact c talked to us or
// answered us at now. It reports whether c is in the table afterwards.
func (t *table) seen(c transport.Contact, now time.Time) bool {
	if c.ID == t.self || !usableAddr(c.Addr, c.Addr) {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dropped.remove(c)
	bi := t.bucketIndex(c.ID)
	b := t.bucketAt(bi)
	if i := indexOf(b.live, c.ID); i >= 0 {
		e := b.live[i]
		e.lastSeen, e.failures = now.UnixNano(), 0
		if e.Addr != c.Addr {
			// The peer moved (a new NAT binding, a restart); the
			// handshake proved it holds the key, so follow it if its
			// new group has room.
			t.dropLive(b, i)
			if !t.groupFits(bi, ipGroup(c.Addr.Addr())) {
				t.promote(b)
				return false
			}
			e.Addr = c.Addr
			t.addLive(b, e)
		} else {
			// To the tail: least recently seen first.
			copy(b.live[i:], b.live[i+1:])
			b.live[len(b.live)-1] = e
		}
		if b.checking == c.ID {
			b.checking = block.ID{}
		}
		return true
	}
	e := entry{Contact: c, added: now.UnixNano()}
	if i := indexOf(b.cache, c.ID); i >= 0 {
		e = b.cache[i]
		b.cache = slices.Delete(b.cache, i, i+1)
	}
	e.Addr, e.lastSeen, e.failures = c.Addr, now.UnixNano(), 0
	if len(b.live) < t.limits.k {
		if !t.groupFits(bi, ipGroup(c.Addr.Addr())) {
			return false
		}
		t.addLive(b, e)
		return true
	}
	// Full: the newcomer waits in the cache until the least recently seen
	// contact fails a liveness check (pendingChecks).
	if t.limits.cache > 0 {
		if len(b.cache) >= t.limits.cache {
			b.cache = slices.Delete(b.cache, 0, 1)
		}
		b.cache = appendEntry(b.cache, e, t.limits.cache)
		if b.checking.IsZero() {
			b.needsCheck = true
		}
	}
	return false
}

// promote moves the most recently seen cached contact that fits the IP
// limits into the live list of b, which must have room.
func (t *table) promote(b *bucket) {
	for i := len(b.cache) - 1; i >= 0; i-- {
		e := b.cache[i]
		if t.groupFits(t.bucketIndex(e.ID), ipGroup(e.Addr.Addr())) {
			b.cache = slices.Delete(b.cache, i, i+1)
			t.addLive(b, e)
			return
		}
	}
}

// failed records that a request to c failed. When a newcomer waits in
// the bucket's cache it takes the place at once (the failure was the
// liveness check); otherwise the contact leaves after maxFailures
// consecutive failures, so a lone link hiccup does not empty a sparse
// bucket.
//
// A failure at an address counts only against the entry held at that
// address: a lookup may have heard of c.ID from a third party with
// another address, and a dead address made up by a liar must not cost an
// honest contact its place. c.Addr zero charges c.ID wherever it is held
// (its verified answer was bad).
func (t *table) failed(c transport.Contact) { t.charge(c, true) }

// stalled records that a lookup request to c went unanswered for the
// stall time. It counts as a failure, but is weaker evidence than one: a
// waiting newcomer does not take the place of a contact that may yet
// answer, which leaves only after maxFailures.
func (t *table) stalled(c transport.Contact) { t.charge(c, false) }

func (t *table) charge(c transport.Contact, replaceAtOnce bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.peek(t.bucketIndex(c.ID))
	if b == nil {
		t.dropped.add(c)
		return
	}
	if i := indexOf(b.live, c.ID); i >= 0 && addrMatches(b.live[i].Addr, c.Addr) {
		e := &b.live[i]
		if e.failures++; e.failures >= t.limits.maxFailures || replaceAtOnce && len(b.cache) > 0 {
			gone := e.Contact // e is overwritten by dropLive
			t.dropLive(b, i)
			t.promote(b)
			t.dropped.add(gone)
		}
		return
	}
	if i := indexOf(b.cache, c.ID); i >= 0 && addrMatches(b.cache[i].Addr, c.Addr) {
		b.cache = slices.Delete(b.cache, i, i+1)
	}
	t.dropped.add(c)
}

// failing reports whether the last request to c failed (or stalled): a
// live contact at c.Addr with failures, or a contact dropped or never
// held whose request failed, not seen since.
func (t *table) failing(c transport.Contact) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	live := t.liveIn(t.bucketIndex(c.ID))
	if i := indexOf(live, c.ID); i >= 0 && addrMatches(live[i].Addr, c.Addr) {
		return live[i].failures > 0
	}
	return t.dropped.has(c)
}

// preferred returns the contact a lookup should ask first for c.ID, heard
// of at c.Addr: the live entry when the table holds one (its address was
// verified by a handshake, c.Addr may be a third party's invention), else
// c; and whether the last request to that contact failed.
func (t *table) preferred(c transport.Contact) (transport.Contact, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	live := t.liveIn(t.bucketIndex(c.ID))
	if i := indexOf(live, c.ID); i >= 0 {
		return live[i].Contact, live[i].failures > 0
	}
	return c, t.dropped.has(c)
}

// revalidateAfter is the age at which CheckLiveness pings a contact it
// has not heard from, so a live contact stays fresh (ContactFreshness)
// for NODES answers and a dead one is found out.
const revalidateAfter = ContactFreshness * 2 / 3

// stale returns up to n live contacts not verified since before cutoff,
// least recently seen first.
func (t *table) stale(cutoff time.Time, n int) []transport.Contact {
	t.mu.Lock()
	defer t.mu.Unlock()
	var old []*entry
	for i := range t.buckets {
		live := t.buckets[i].live
		for j := range live {
			if live[j].lastSeen < cutoff.UnixNano() {
				old = append(old, &live[j])
			}
		}
	}
	slices.SortFunc(old, func(a, b *entry) int { return cmp.Compare(a.lastSeen, b.lastSeen) })
	out := make([]transport.Contact, 0, min(n, len(old)))
	for _, e := range old[:min(n, len(old))] {
		out = append(out, e.Contact)
	}
	return out
}

// pendingChecks returns, once per full bucket with a waiting newcomer,
// its least recently seen contact: the caller pings each and reports the
// outcome with checked.
func (t *table) pendingChecks() []transport.Contact {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []transport.Contact
	for i := range t.buckets {
		b := &t.buckets[i]
		if !b.needsCheck {
			continue
		}
		b.needsCheck = false
		if len(b.live) == 0 || len(b.cache) == 0 {
			continue
		}
		b.checking = b.live[0].ID
		out = append(out, b.live[0].Contact)
	}
	return out
}

// checked takes the outcome of a liveness check of c from pendingChecks.
// A contact that answered was already moved to the tail by seen; one that
// did not is evicted at once for the newest cached contact, unless it
// was seen at another address meanwhile.
func (t *table) checked(c transport.Contact, alive bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.peek(t.bucketIndex(c.ID))
	if b == nil {
		return
	}
	if b.checking == c.ID {
		b.checking = block.ID{}
	}
	if alive {
		return
	}
	if i := indexOf(b.live, c.ID); i >= 0 && addrMatches(b.live[i].Addr, c.Addr) {
		t.dropLive(b, i)
		t.promote(b)
		t.dropped.add(c)
	}
}

// remove drops id from the table and its caches (a peer that lied).
func (t *table) remove(id block.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.peek(t.bucketIndex(id))
	if b == nil {
		return
	}
	if i := indexOf(b.live, id); i >= 0 {
		t.dropLive(b, i)
		t.promote(b)
	}
	if i := indexOf(b.cache, id); i >= 0 {
		b.cache = slices.Delete(b.cache, i, i+1)
	}
}

// closest returns up to n live contacts closest to target by XOR
// distance, closest first, leaving out except.
func (t *table) closest(target block.ID, n int, except block.ID) []transport.Contact {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closestLocked(target, n, func(e *entry) bool { return e.ID != except })
}

// knowsAllNear returns the n closest contacts to target that have not
// failed (all of them if the table holds fewer), when the table likely
// holds every node near target; nil otherwise. It does when the network looks no larger than twice the
// table (sizeLooksKnown) and the bucket of target and every bucket the
// contacts come from hold fewer than K live contacts: a bucket that is
// not full took in every node this node heard of in its range. A closer
// node it missed is named in the STORED answers of a put.
func (t *table) knowsAllNear(target block.ID, n int) []transport.Contact {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.liveIn(t.bucketIndex(target))) >= t.limits.k || !t.sizeLooksKnown() {
		return nil
	}
	cs := t.closestLocked(target, n, func(e *entry) bool { return e.failures == 0 })
	for _, c := range cs {
		if len(t.liveIn(t.bucketIndex(c.ID))) >= t.limits.k {
			return nil
		}
	}
	return cs
}

// sizeLooksKnown reports whether the network, as estimated from how far
// this node's K closest contacts are from it (K nodes in a fraction f of
// the ID space: about K/f nodes), holds at most twice the live contacts
// of the table. A node that just joined a large network knows its own
// neighbourhood well and little else, and this is how it tells. Called
// with t.mu held.
func (t *table) sizeLooksKnown() bool {
	live := t.size
	if live == 0 {
		return false
	}
	cs := t.closestLocked(t.self, min(t.limits.k, live), func(*entry) bool { return true })
	if len(cs) == 0 {
		return false
	}
	d := block.Xor(t.self, cs[len(cs)-1].ID)
	f := float64(binary.BigEndian.Uint64(d[:8])) / (1 << 64)
	return f > 0 && float64(len(cs))/f <= 2*float64(live)
}

// ContactFreshness is how long after this node last verified a contact
// (it answered, or sent a request) the contact may be named in NODES
// answers (docs/PROTOCOL.md sections 8 and 11).
const ContactFreshness = 15 * time.Minute

// closestAnswer is closest for a NODES answer to requester at now: it
// names only contacts this node verified within ContactFreshness whose
// last request did not fail, so a node that just noticed a peer die, or
// has not heard from it for a while, stops sending others to it; and it
// leaves out the requester and addresses the requester could not use (a
// loopback address to a peer off loopback).
func (t *table) closestAnswer(target block.ID, n int, requester transport.Peer, now time.Time) []transport.Contact {
	// Every entry passed CheckPeerAddr when it entered (seen), so only
	// the loopback rule, which depends on the requester, is left to
	// check; the simulations spend a tenth of their time here.
	cutoff := now.UnixNano() - int64(ContactFreshness)
	toLoopback := isLoopback(requester.Addr)
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closestLocked(target, n, func(e *entry) bool {
		return e.failures == 0 && e.lastSeen >= cutoff && e.ID != requester.ID && (toLoopback || !isLoopback(e.Addr))
	})
}

// closestLocked visits whole buckets in distance order, so it sorts only
// the few buckets the answer comes from. With c = cpl(self, target):
//   - bucket c shares more than c bits with target: it comes first;
//   - a bucket i > c shares exactly c bits, and its distances agree with
//     self^target on bits 0..i-1 and differ at bit i; so it is closer than
//     every deeper bucket when bit i of self^target is 1, farther when 0;
//   - a bucket i < c shares exactly i bits: farther as i falls.
func (t *table) closestLocked(target block.ID, n int, keep func(*entry) bool) []transport.Contact {
	if n <= 0 {
		return nil
	}
	// Room for a whole bucket past n: take appends one before trimming.
	out := make([]transport.Contact, 0, n+t.limits.k)
	take := func(i int) {
		if len(out) == n || len(t.liveIn(i)) == 0 {
			return
		}
		from := len(out)
		live := t.liveIn(i)
		for j := range live {
			if keep(&live[j]) {
				out = append(out, live[j].Contact)
			}
		}
		sortByDistance(out[from:], target)
		out = out[:min(len(out), n)]
	}
	c := t.bucketIndex(target)
	if c < numBuckets {
		take(c)
		dist := block.Xor(t.self, target)
		bitSet := func(i int) bool { return dist[i/8]&(0x80>>(i%8)) != 0 }
		for i := c + 1; i <= t.top && len(out) < n; i++ {
			if bitSet(i) {
				take(i)
			}
		}
		for i := t.top; i > c && len(out) < n; i-- {
			if !bitSet(i) {
				take(i)
			}
		}
	}
	for i := min(c, t.top+1) - 1; i >= 0 && len(out) < n; i-- {
		take(i)
	}
	return out
}

// sortByDistance sorts cs by XOR distance to target, closest first.
func sortByDistance(cs []transport.Contact, target block.ID) {
	slices.SortFunc(cs, func(a, b transport.Contact) int {
		return CompareDistance(a.ID, b.ID, target)
	})
}

// CompareDistance compares a and b by XOR distance to target: -1 when a
// is closer, 1 when b is, 0 when they are the same ID.
func CompareDistance(a, b, target block.ID) int {
	for i := range target {
		da, db := a[i]^target[i], b[i]^target[i]
		if da != db {
			if da < db {
				return -1
			}
			return 1
		}
	}
	return 0
}

// len returns the number of live contacts.
func (t *table) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.size
}

// contacts returns every live contact, bucket by bucket, least recently
// seen first within a bucket.
func (t *table) contacts() []ContactInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]ContactInfo, 0, t.size)
	for i := range t.buckets {
		live := t.buckets[i].live
		for j := range live {
			out = append(out, live[j].info(t.self))
		}
	}
	return out
}

// lookedUp records a lookup for target, which refreshes target's bucket.
func (t *table) lookedUp(target block.ID, now time.Time) {
	i := t.bucketIndex(target)
	if i >= numBuckets {
		return
	}
	t.mu.Lock()
	t.bucketAt(i).lastLookup = now.UnixNano()
	t.mu.Unlock()
}

// staleBuckets returns the buckets not looked up since before cutoff that
// a lookup could still fill. With m the common prefix length of the K-th
// closest contact to the own ID, buckets deeper than m hold only nodes
// closer than that contact, and a lookup of the own ID finds all of them;
// so buckets 0 to m remain (m is the farthest contact's bucket when the
// table holds fewer than K).
func (t *table) staleBuckets(cutoff time.Time) []int {
	return t.farBuckets(func(b *bucket) bool { return b.lastLookup < cutoff.UnixNano() })
}

// emptyBuckets returns the buckets staleBuckets would consider that hold
// no contact at all.
func (t *table) emptyBuckets() []int {
	return t.farBuckets(func(b *bucket) bool { return len(b.live) == 0 })
}

func (t *table) farBuckets(keep func(*bucket) bool) []int {
	t.mu.Lock()
	defer t.mu.Unlock()
	near := t.closestLocked(t.self, t.limits.k, func(*entry) bool { return true })
	if len(near) == 0 {
		return nil
	}
	last := t.bucketIndex(near[len(near)-1].ID)
	var out []int
	for i := 0; i <= last; i++ {
		if keep(t.bucketAt(i)) {
			out = append(out, i)
		}
	}
	return out
}
