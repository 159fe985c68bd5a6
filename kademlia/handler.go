package kademlia

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/blockstore"
	"github.com/flowmail/flowmail/record"
	"github.com/flowmail/flowmail/transport"
)

// Handle answers one request from a verified peer; it is the
// transport.Handler of the node. A peer that is not in client mode and
// sends a well-formed request enters the routing table.
func (d *DHT) Handle(ctx context.Context, from transport.Peer, req []byte) []byte {
	d.stats.requestsHandled.Add(1)
	m, err := Decode(req)
	if err != nil {
		code := CodeMalformed
		if errors.Is(err, ErrUnknownType) {
			code = CodeUnknownType
		}
		return d.encodeReply(errorReply(code, err.Error()))
	}
	var resp Message
	switch m := m.(type) {
	case Ping:
		resp = Pong{Observed: from.Addr}
	case FindNode:
		resp = Nodes{Contacts: d.table.closestAnswer(m.Target, d.answerSize(), from, d.now())}
	case FindBlock:
		resp = d.handleFindBlock(ctx, from, m)
	case Store:
		resp = d.handleStore(ctx, from, m)
	case List:
		resp = d.handleList(ctx, m)
	case Delete:
		resp = d.handleDelete(ctx, from, m)
	case DeleteMany:
		resp = d.handleDeleteMany(ctx, m)
	case StoreMany:
		resp = d.handleStoreMany(ctx, from, m)
	default:
		// A well-formed reply sent as a request.
		return d.encodeReply(errorReply(CodeMalformed, m.Type().String()+" is not a request"))
	}
	d.observe(from)
	return d.encodeReply(resp)
}

// errorReply builds an ERROR whose text is UTF-8 and fits the limit (it
// is cut at a UTF-8 boundary).
func errorReply(code ErrorCode, text string) *Error {
	text = strings.ToValidUTF8(text, "?")
	if len(text) > MaxErrorText {
		cut := MaxErrorText
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut]
	}
	return &Error{Code: code, Text: text}
}

func (d *DHT) encodeReply(m Message) []byte {
	b, err := Encode(m)
	if err != nil {
		d.log.Error("kademlia: encoding a reply", "type", m.Type(), "err", err)
		b, _ = Encode(&Error{Code: CodeInternal})
	}
	return b
}

// remainingSeconds is the lifetime left at now in whole seconds, capped at
// the protocol maximum; 0 means the block is as good as expired.
func remainingSeconds(m blockstore.Meta, now time.Time) uint32 {
	s := m.Remaining(now) / time.Second
	return uint32(min(s, time.Duration(MaxLifetimeSeconds)))
}

func (d *DHT) handleFindBlock(ctx context.Context, from transport.Peer, m FindBlock) Message {
	if d.cfg.Store != nil {
		data, meta, err := d.cfg.Store.Get(ctx, m.ID)
		if err == nil {
			if s := remainingSeconds(meta, d.now()); s > 0 {
				return BlockReply{Lifetime: s, Block: data}
			}
		} else if !errors.Is(err, blockstore.ErrNotFound) {
			d.log.Warn("kademlia: reading a block", "id", m.ID.Short(), "err", err)
		}
	}
	return Nodes{Contacts: d.table.closestAnswer(m.ID, d.answerSize(), from, d.now())}
}

// storeErrorCode maps a store error to the code a peer understands. A
// record's own reason comes first: a log with an event after its
// revocation is invalid and revoked, and says revoked.
func storeErrorCode(err error) ErrorCode {
	switch {
	case errors.Is(err, record.ErrStale):
		return CodeStale
	case errors.Is(err, record.ErrForked):
		return CodeForked
	case errors.Is(err, record.ErrRevoked):
		return CodeRevoked
	case errors.Is(err, blockstore.ErrInvalid), errors.Is(err, blockstore.ErrRefused):
		return CodeInvalidBlock
	case errors.Is(err, blockstore.ErrNotFound):
		return CodeNotFound
	case errors.Is(err, blockstore.ErrForbidden), errors.Is(err, blockstore.ErrDeleted):
		return CodeForbidden
	case errors.Is(err, blockstore.ErrFull):
		return CodeStorageFull
	case errors.Is(err, blockstore.ErrOverBudget):
		return CodeOverloaded
	}
	return CodeInternal
}

func (d *DHT) storeError(op string, err error) *Error {
	code := storeErrorCode(err)
	if code == CodeInternal {
		// The peer learns nothing of our internals; the log does.
		d.log.Warn("kademlia: store failed", "op", op, "err", err)
		return errorReply(code, "")
	}
	return errorReply(code, err.Error())
}

func (d *DHT) handleStore(ctx context.Context, from transport.Peer, m Store) Message {
	if d.cfg.Client {
		return errorReply(CodeClientMode, "")
	}
	group := d.ipGroupOf(from)
	if d.costsVerification(ctx, m.Block) && !d.records.allow(from.ID, group, d.now()) {
		return errorReply(CodeOverloaded, "too many record STOREs from this source: retry later")
	}
	id, err := d.cfg.Store.Put(ctx, m.Block, time.Duration(m.Lifetime)*time.Second, blockstore.PutOptions{Source: sourceOf(from, group)})
	if err != nil {
		return d.storeError("STORE", err)
	}
	// Another holder (or the owner) just stored it at the closest nodes,
	// so this node need not republish it for an interval.
	d.repub.schedule(id, d.now().Add(d.jitter(d.cfg.RepublishInterval)))
	return Stored{Contacts: d.closerThanSelf(id, from)}
}

// sourceOf is what the store charges a peer's blocks to.
func sourceOf(from transport.Peer, group netip.Prefix) blockstore.Source {
	src := blockstore.Source{Node: from.ID.String()}
	if group.IsValid() {
		src.Group = group.String()
	}
	return src
}

// handleStoreMany stores the data blocks of a STORE_MANY together
// (blockstore's PutMany) and answers, for each, how many contacts it
// knows closer to it than itself, or StoreRefused. Other blocks than
// data blocks are refused: records and index blocks have their own
// STOREs and limits.
func (d *DHT) handleStoreMany(ctx context.Context, from transport.Peer, m StoreMany) Message {
	if d.cfg.Client {
		return errorReply(CodeClientMode, "")
	}
	out := StoredMany{Closer: make([]uint8, len(m.Blocks))}
	var blocks [][]byte
	var at []int
	for i, b := range m.Blocks {
		if h, _, err := block.ParseHeader(b); err != nil || h.Type != block.TypeData {
			out.Closer[i] = StoreRefused
			continue
		}
		blocks, at = append(blocks, b), append(at, i)
	}
	if len(blocks) == 0 {
		return out
	}
	ids, errs := d.cfg.Store.PutMany(ctx, blocks, time.Duration(m.Lifetime)*time.Second, blockstore.PutOptions{Source: sourceOf(from, d.ipGroupOf(from))})
	for j, err := range errs {
		i := at[j]
		switch {
		case err == nil:
			d.repub.schedule(ids[j], d.now().Add(d.jitter(d.cfg.RepublishInterval)))
			out.Closer[i] = uint8(len(d.closerThanSelf(ids[j], from)))
		case storeErrorCode(err) != CodeInternal:
			out.Closer[i] = StoreRefused
		default:
			return d.storeError("STORE_MANY", err)
		}
	}
	return out
}

// closerThanSelf is what a STORED answer names: the contacts a NODES
// answer would name for id that are closer to it than this node. A true
// holder names at most the other holders; a node the block does not
// belong at names where it does.
func (d *DHT) closerThanSelf(id block.ID, from transport.Peer) []transport.Contact {
	cs := d.table.closestAnswer(id, d.answerSize(), from, d.now())
	own := block.Xor(d.cfg.ID, id)
	for i, c := range cs {
		if !block.Less(block.Xor(c.ID, id), own) {
			return cs[:i]
		}
	}
	return cs
}

// ipGroupOf is the IP group a peer's requests are charged to (storage
// budgets, record limits); none when the table's IP limits are off (a
// testnet, every node on one loopback address).
func (d *DHT) ipGroupOf(p transport.Peer) netip.Prefix {
	if d.cfg.BucketIPLimit < 0 || !p.Addr.IsValid() {
		return netip.Prefix{}
	}
	return ipGroup(p.Addr.Addr())
}

// costsVerification reports whether storing b makes this node verify a
// record: b is laid out as one and is not the very record held at its
// slot (a replay, which the store takes without verifying). Blocks of
// other types are checked for a hash and at most one signature.
func (d *DHT) costsVerification(ctx context.Context, b []byte) bool {
	h, _, err := block.ParseHeader(b)
	if err != nil || h.Type != block.TypeRecord {
		return false
	}
	rec, err := record.Decode(b)
	if err != nil {
		return false // refused for its layout, at no cost
	}
	m, err := d.cfg.Store.Stat(ctx, rec.Slot())
	return err != nil || m.BlockID != block.Sum(b)
}

func (d *DHT) handleList(ctx context.Context, m List) Message {
	if d.cfg.Client {
		return errorReply(CodeClientMode, "")
	}
	var after *block.ID
	if m.HasAfter {
		after = &m.After
	}
	since := unixTime(m.Since)
	limit := min(int(m.Limit), MaxListEntries)
	entries, more, err := d.cfg.Store.List(ctx, m.Target, int(m.Bits), since, after, max(limit, 1))
	if err != nil {
		return d.storeError("LIST", err)
	}
	if len(entries) > limit {
		// limit 0: the peer only asks whether anything matches.
		entries, more = entries[:limit], true
	}
	out := Listed{Entries: make([]ListedEntry, len(entries)), More: more}
	for i, e := range entries {
		out.Entries[i] = ListedEntry{ID: e.ID, StoredAt: uint64(max(e.StoredAt.Unix(), 0))}
	}
	return out
}

// handleDelete drops the block and answers OK; a node that does not
// hold it answers NODES as FIND_NODE would, so a delete is a lookup whose
// requests delete (docs/PROTOCOL.md 8).
func (d *DHT) handleDelete(ctx context.Context, from transport.Peer, m Delete) Message {
	if d.cfg.Client {
		return errorReply(CodeClientMode, "")
	}
	if err := d.cfg.Store.Delete(ctx, m.ID, m.Preimage); errors.Is(err, blockstore.ErrNotFound) {
		return Nodes{Contacts: d.table.closestAnswer(m.ID, d.answerSize(), from, d.now())}
	} else if err != nil {
		return d.storeError("DELETE", err)
	}
	d.repub.forget(m.ID)
	return OK{}
}

// handleDeleteMany drops each block of m it holds whose deletion hash its
// preimage opens, and answers one status per ID (docs/PROTOCOL.md 8). A store failure other than a block
// missing or refused ends it with an ERROR; the blocks dropped before
// stay dropped, and the requester's delete lookups find them gone.
func (d *DHT) handleDeleteMany(ctx context.Context, m DeleteMany) Message {
	if d.cfg.Client {
		return errorReply(CodeClientMode, "")
	}
	out := Deleted{Statuses: make([]DeleteStatus, len(m.Deletes))}
	ids, pres := make([]block.ID, len(m.Deletes)), make([][32]byte, len(m.Deletes))
	for i, x := range m.Deletes {
		ids[i], pres[i] = x.ID, x.Preimage
	}
	for i, err := range d.cfg.Store.DeleteMany(ctx, ids, pres) {
		switch {
		case err == nil:
			d.repub.forget(ids[i])
		case errors.Is(err, blockstore.ErrNotFound):
			out.Statuses[i] = StatusNotHeld
		case errors.Is(err, blockstore.ErrForbidden), errors.Is(err, blockstore.ErrDeleted):
			out.Statuses[i] = StatusForbidden
		default:
			return d.storeError("DELETE_MANY", err)
		}
	}
	return out
}

// answerSize is how many contacts a NODES answer names: K and a quarter
// more, rounded up (MaxNodes at K = 20; 4 at the K = 3 of small test
// networks), so the live K closest stay in it when up to a quarter of
// the contacts this node counts live have died unnoticed.
func (d *DHT) answerSize() int { return d.cfg.K + (d.cfg.K+3)/4 }
