package kademlia

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"maps"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/blockstore"
	"github.com/flowmail/flowmail/internal/clock"
	"github.com/flowmail/flowmail/transport"
)

// handlerFixture is one DHT whose Handle is called directly: no network,
// a memory store on a clock the test moves.
type handlerFixture struct {
	d     *DHT
	store blockstore.Store
	now   time.Time
	peer  transport.Peer
	rng   *rand.Rand
}

// fixtureClock tells the fixture's time, which the test sets, to its DHT
// and its store.
type fixtureClock struct {
	clock.Real
	f *handlerFixture
}

func (c fixtureClock) Now() time.Time { return c.f.now }

// nopTransport satisfies Config; handler tests never send.
type nopTransport struct{}

func (nopTransport) Request(context.Context, transport.Contact, []byte) ([]byte, transport.Peer, error) {
	return nil, transport.Peer{}, transport.ErrUnreachable
}
func (nopTransport) LocalAddr() netip.AddrPort { return netip.MustParseAddrPort("192.0.2.1:4433") }
func (nopTransport) Close() error              { return nil }

func newHandlerFixture(t *testing.T, client bool) *handlerFixture {
	t.Helper()
	f := &handlerFixture{now: t0, rng: rand.New(rand.NewPCG(7, 8))}
	self := testID(0xaa)
	cfg := Config{ID: self, Transport: nopTransport{}, Client: client, Clock: fixtureClock{f: f}, Rand: rand.New(rand.NewPCG(1, 1))}
	if !client {
		f.store = blockstore.NewMemory(blockstore.Config{Self: self, Clock: fixtureClock{f: f}})
		t.Cleanup(func() { f.store.Close() })
		cfg.Store = f.store
	}
	var err error
	if f.d, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	f.peer = transport.Peer{ID: testID(0x11), Addr: netip.MustParseAddrPort("198.51.100.7:5000")}
	return f
}

// call sends m to Handle and decodes the answer.
func (f *handlerFixture) call(t *testing.T, m Message) Message {
	t.Helper()
	return f.callRaw(t, mustEncode(t, m))
}

func (f *handlerFixture) callRaw(t *testing.T, req []byte) Message {
	t.Helper()
	resp, err := Decode(f.d.Handle(t.Context(), f.peer, req))
	if err != nil {
		t.Fatalf("Handle answered with an undecodable message: %v", err)
	}
	return resp
}

func wantError(t *testing.T, m Message, code ErrorCode) {
	t.Helper()
	e, ok := m.(*Error)
	if !ok || e.Code != code {
		t.Fatalf("got %#v, want ERROR %d (%v)", m, code, code)
	}
}

func wantStored(t *testing.T, m Message) {
	t.Helper()
	if _, ok := m.(Stored); !ok {
		t.Fatalf("got %#v, want STORED", m)
	}
}

func wantOK(t *testing.T, m Message) {
	t.Helper()
	if _, ok := m.(OK); !ok {
		t.Fatalf("got %#v, want OK", m)
	}
}

// indexBlock returns a valid index block whose ID shares at least bits
// leading bits with target, and its deletion preimage.
func indexBlock(rng *rand.Rand, target block.ID, bits int) ([]byte, [32]byte) {
	var pre [32]byte
	for i := 0; i < 32; i += 8 {
		binary.LittleEndian.PutUint64(pre[i:], rng.Uint64())
	}
	sealed := make([]byte, block.MinIndexSize-block.HeaderSizeWithDeletion-block.NonceSize)
	for i := range sealed {
		sealed[i] = byte(rng.Uint32())
	}
	x := block.Index{Header: block.Header{HasDeletion: true, DeletionHash: block.DeletionHash(pre)}, Sealed: sealed}
	for {
		b := x.Encode()
		if block.CommonPrefixLen(block.Sum(b), target) >= bits {
			return b, pre
		}
		x.Nonce++
	}
}

// dataBlockWithDeletion returns a data block carrying a deletion hash.
func dataBlockWithDeletion(payload string) ([]byte, [32]byte) {
	var pre [32]byte
	copy(pre[:], payload)
	h := block.Header{HasDeletion: true, DeletionHash: block.DeletionHash(pre)}
	return block.Data{Header: h, Payload: []byte(payload)}.Encode(), pre
}

// TestHandleDeleteManyAnswersEachID: DELETE_MANY drops what the node
// holds under the preimage and says of each ID whether it was dropped,
// not held, or refused (docs/PROTOCOL.md 8).
func TestHandleDeleteManyAnswersEachID(t *testing.T) {
	f := newHandlerFixture(t, false)
	var pre [32]byte
	copy(pre[:], "the data blocks of one mail")
	h := block.Header{HasDeletion: true, DeletionHash: block.DeletionHash(pre)}
	held := block.Data{Header: h, Payload: []byte("a shard held here")}.Encode()
	other, _ := dataBlockWithDeletion("a shard of another mail")
	wantStored(t, f.call(t, Store{Lifetime: 3600, Block: held}))
	wantStored(t, f.call(t, Store{Lifetime: 3600, Block: other}))
	want := map[block.ID]DeleteStatus{block.Sum(held): StatusDeleted, block.Sum(other): StatusForbidden, testID(7): StatusNotHeld}
	ids := slices.SortedFunc(maps.Keys(want), func(a, b block.ID) int { return bytes.Compare(a[:], b[:]) })
	check := func(what string) {
		t.Helper()
		m := DeleteMany{}
		for _, id := range ids {
			m.Deletes = append(m.Deletes, Delete{ID: id, Preimage: pre})
		}
		ans, ok := f.call(t, m).(Deleted)
		if !ok || len(ans.Statuses) != len(ids) {
			t.Fatalf("%s: got %#v, want DELETED with %d statuses", what, ans, len(ids))
		}
		for i, id := range ids {
			if ans.Statuses[i] != want[id] {
				t.Errorf("%s: %v has status %d, want %d", what, id.Short(), ans.Statuses[i], want[id])
			}
		}
	}
	check("first")
	if _, err := f.store.Stat(t.Context(), block.Sum(held)); !errors.Is(err, blockstore.ErrNotFound) {
		t.Fatalf("the shard is still held after DELETE_MANY: %v", err)
	}
	if _, err := f.store.Stat(t.Context(), block.Sum(other)); err != nil {
		t.Fatalf("the other mail's shard went: %v", err)
	}
	// Deleted once, the shard's tombstone refuses it.
	want[block.Sum(held)] = StatusForbidden
	check("again")
}

// TestHandleStoreManyAnswersEachBlock: STORE_MANY stores the data
// blocks it carries and refuses the rest, and says of each how many
// contacts it knows closer to it (docs/PROTOCOL.md 8).
func TestHandleStoreManyAnswersEachBlock(t *testing.T) {
	f := newHandlerFixture(t, false)
	shard := block.Data{Payload: []byte("a shard that belongs here")}.Encode()
	far := block.Data{Payload: []byte("a shard that belongs nearer to others")}.Encode()
	// R contacts that differ from far's ID only in its last byte, far
	// closer than this node (testID(0xaa)) can be unless it shares the ID.
	for i := range block.ShardReplicas {
		id := block.Sum(far)
		id[block.IDSize-1] ^= byte(i + 1)
		if !f.d.table.seen(transport.Contact{ID: id, Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, byte(101 + i), 9}), 6000)}, f.now) {
			t.Fatal("the routing table did not take a contact")
		}
	}
	index, _ := IndexBlock(f.rng, testID(3), 0)
	garbled, _ := dataBlockWithDeletion("a shard cut inside its header")
	garbled = garbled[:10]
	ans, ok := f.call(t, StoreMany{Lifetime: 3600, Blocks: [][]byte{shard, index, far, garbled}}).(StoredMany)
	want := []uint8{0, StoreRefused, uint8(block.ShardReplicas), StoreRefused}
	if !ok || !slices.Equal(ans.Closer, want) {
		t.Fatalf("got %#v, want STORED_MANY %v", ans, want)
	}
	for _, b := range [][]byte{shard, far} {
		if _, err := f.store.Stat(t.Context(), block.Sum(b)); err != nil {
			t.Errorf("a stored shard is not held: %v", err)
		}
	}
	if _, err := f.store.Stat(t.Context(), block.Sum(index)); !errors.Is(err, blockstore.ErrNotFound) {
		t.Errorf("an index block came in through STORE_MANY: %v", err)
	}
	wantError(t, newHandlerFixture(t, true).call(t, StoreMany{Lifetime: 3600, Blocks: [][]byte{shard}}), CodeClientMode)
}

func TestHandlePingAnswersObservedAddress(t *testing.T) {
	f := newHandlerFixture(t, false)
	pong, ok := f.call(t, Ping{}).(Pong)
	if !ok || pong.Observed != f.peer.Addr {
		t.Fatalf("got %#v, want PONG with %v", pong, f.peer.Addr)
	}
}

func TestHandleRejectsBadRequests(t *testing.T) {
	f := newHandlerFixture(t, false)
	cases := []struct {
		name string
		req  []byte
		code ErrorCode
	}{
		{"empty", nil, CodeMalformed},
		{"unknown type", []byte{0x33}, CodeUnknownType},
		{"truncated FIND_NODE", []byte{byte(TypeFindNode), 1, 2}, CodeMalformed},
		{"trailing byte after PING", []byte{byte(TypePing), 0}, CodeMalformed},
		{"STORE lifetime zero", append([]byte{byte(TypeStore), 0, 0, 0, 0}, block.Data{Payload: []byte{1}}.Encode()...), CodeMalformed},
		{"a reply sent as a request", mustEncode(t, OK{}), CodeMalformed},
		{"an ERROR sent as a request", mustEncode(t, &Error{Code: CodeInternal}), CodeMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, f.callRaw(t, tc.req), tc.code)
		})
	}
	if f.d.Size() != 0 {
		t.Fatal("a peer that sent only bad requests entered the routing table")
	}
}

func TestHandleStoreFindDelete(t *testing.T) {
	f := newHandlerFixture(t, false)
	blk, pre := dataBlockWithDeletion("hello from a shard")
	id := block.Sum(blk)

	if _, ok := f.call(t, FindBlock{ID: id}).(Nodes); !ok {
		t.Fatal("FIND_BLOCK of a block not held should answer NODES")
	}
	wantStored(t, f.call(t, Store{Lifetime: 3600, Block: blk}))
	f.now = f.now.Add(10 * time.Minute)
	got, ok := f.call(t, FindBlock{ID: id}).(BlockReply)
	if !ok || !bytes.Equal(got.Block, blk) {
		t.Fatalf("FIND_BLOCK after STORE: %#v", got)
	}
	if got.Lifetime != 3000 {
		t.Fatalf("BLOCK lifetime %d, want the remaining 3000 s", got.Lifetime)
	}

	bad := bytes.Clone(blk)
	bad[0] = 9 // version
	wantError(t, f.call(t, Store{Lifetime: 60, Block: bad}), CodeInvalidBlock)

	var wrong [32]byte
	wantError(t, f.call(t, Delete{ID: id, Preimage: wrong}), CodeForbidden)
	if _, ok := f.call(t, Delete{ID: testID(3), Preimage: pre}).(Nodes); !ok {
		t.Fatal("a DELETE of a block not held is not answered with NODES")
	}
	wantOK(t, f.call(t, Delete{ID: id, Preimage: pre}))
	if _, ok := f.call(t, FindBlock{ID: id}).(Nodes); !ok {
		t.Fatal("a deleted block is still served")
	}
	// The tombstone keeps republishing holders from bringing it back.
	wantError(t, f.call(t, Store{Lifetime: 3600, Block: blk}), CodeForbidden)

	// A pubkey block carries no deletion hash: nobody may delete it.
	pub := identityBlock(t)
	wantStored(t, f.call(t, Store{Lifetime: 60, Block: pub}))
	wantError(t, f.call(t, Delete{ID: block.Sum(pub), Preimage: pre}), CodeForbidden)
}

func TestHandleExpiredBlockIsNotServed(t *testing.T) {
	f := newHandlerFixture(t, false)
	blk := block.Data{Payload: []byte("short-lived")}.Encode()
	wantStored(t, f.call(t, Store{Lifetime: 60, Block: blk}))
	f.now = f.now.Add(61 * time.Second)
	if m, ok := f.call(t, FindBlock{ID: block.Sum(blk)}).(Nodes); !ok {
		t.Fatalf("an expired block was served: %#v", m)
	}
}

func TestHandleList(t *testing.T) {
	f := newHandlerFixture(t, false)
	target := testID(0x42)
	var inPrefix []block.ID
	for range 5 {
		b, _ := indexBlock(f.rng, target, 4)
		wantStored(t, f.call(t, Store{Lifetime: 3600, Block: b}))
		inPrefix = append(inPrefix, block.Sum(b))
		f.now = f.now.Add(time.Second)
	}
	far, _ := indexBlock(f.rng, block.Xor(target, testID(0xff)), 4) // outside the prefix
	wantStored(t, f.call(t, Store{Lifetime: 3600, Block: far}))
	wantStored(t, f.call(t, Store{Lifetime: 3600, Block: block.Data{Payload: []byte("not an index block")}.Encode()}))

	all, ok := f.call(t, List{Target: target, Bits: 4, Limit: 100}).(Listed)
	if !ok || len(all.Entries) != 5 || all.More {
		t.Fatalf("LIST: %#v, want the 5 index blocks in the prefix", all)
	}
	for i, e := range all.Entries {
		if i > 0 && !block.Less(all.Entries[i-1].ID, e.ID) {
			t.Fatal("LISTED entries are not in ascending ID order")
		}
		if block.CommonPrefixLen(e.ID, target) < 4 {
			t.Fatalf("LISTED %v outside the prefix", e.ID.Short())
		}
	}

	// Paging with the cursor visits each entry once.
	var paged []ListedEntry
	req := List{Target: target, Bits: 4, Limit: 2}
	for {
		page := f.call(t, req).(Listed)
		paged = append(paged, page.Entries...)
		if !page.More {
			break
		}
		req.HasAfter, req.After = true, page.Entries[len(page.Entries)-1].ID
	}
	if len(paged) != 5 {
		t.Fatalf("paging gave %d entries, want 5", len(paged))
	}

	since := all.Entries[0].StoredAt
	for _, e := range all.Entries {
		since = max(since, e.StoredAt)
	}
	recent := f.call(t, List{Target: target, Bits: 4, Since: since, Limit: 100}).(Listed)
	if len(recent.Entries) != 1 {
		t.Fatalf("LIST since the last store gave %d entries, want 1", len(recent.Entries))
	}
	probe := f.call(t, List{Target: target, Bits: 4, Limit: 0}).(Listed)
	if len(probe.Entries) != 0 || !probe.More {
		t.Fatalf("LIST with limit 0: %#v, want no entries and more", probe)
	}
	// A since far in the future lists nothing, however large: it must
	// not wrap around into the past.
	for _, since := range []uint64{math.MaxInt64 - 1, math.MaxInt64, math.MaxUint64, 1 << 62} {
		if far := f.call(t, List{Target: target, Bits: 4, Since: since, Limit: 100}).(Listed); len(far.Entries) != 0 {
			t.Errorf("LIST since %d gave %d entries, want none", since, len(far.Entries))
		}
	}
}

func TestClientModeRefusesToStore(t *testing.T) {
	f := newHandlerFixture(t, true)
	blk := block.Data{Payload: []byte("x")}.Encode()
	wantError(t, f.call(t, Store{Lifetime: 60, Block: blk}), CodeClientMode)
	wantError(t, f.call(t, List{Target: testID(1), Bits: 3, Limit: 10}), CodeClientMode)
	wantError(t, f.call(t, Delete{ID: block.Sum(blk)}), CodeClientMode)
	if _, ok := f.call(t, FindBlock{ID: block.Sum(blk)}).(Nodes); !ok {
		t.Fatal("a client should answer FIND_BLOCK with NODES")
	}
	if _, ok := f.call(t, Ping{}).(Pong); !ok {
		t.Fatal("a client should answer PING")
	}
	if n, err := f.d.Republish(t.Context()); n != 0 || err != nil {
		t.Fatalf("a client republished %d blocks (%v)", n, err)
	}
}

func TestNewChecksConfig(t *testing.T) {
	store := blockstore.NewMemory(blockstore.Config{})
	defer store.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	cases := map[string]Config{
		"no transport":         {Store: store, Rand: rng},
		"no rand":              {Transport: nopTransport{}, Store: store},
		"full node, no store":  {Transport: nopTransport{}, Rand: rng},
		"client with a store":  {Transport: nopTransport{}, Store: store, Client: true, Rand: rng},
		"K above the protocol": {Transport: nopTransport{}, Store: store, Rand: rng, K: K + 1},
	}
	for name, cfg := range cases {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}

func TestHandleAddsOnlyFullNodePeers(t *testing.T) {
	f := newHandlerFixture(t, false)
	f.peer.Client = true
	f.call(t, Ping{})
	f.call(t, FindNode{Target: testID(5)})
	if f.d.Size() != 0 {
		t.Fatal("a client-mode peer entered the routing table")
	}
	f.peer.Client = false
	f.call(t, Ping{})
	cs := f.d.Contacts()
	if len(cs) != 1 || cs[0].ID != f.peer.ID || cs[0].Addr != f.peer.Addr || !cs[0].LastSeen.Equal(f.now) {
		t.Fatalf("contacts %+v, want the full-node peer", cs)
	}
	// NODES never names the requester itself.
	nodes := f.call(t, FindNode{Target: f.peer.ID}).(Nodes)
	if len(nodes.Contacts) != 0 {
		t.Fatalf("NODES named the requester: %v", nodes.Contacts)
	}
}

func TestErrorReplyCutsLongText(t *testing.T) {
	long := string(bytes.Repeat([]byte("é"), MaxErrorText)) // 2 bytes a rune
	e := errorReply(CodeInternal, long+"x")
	if len(e.Text) > MaxErrorText {
		t.Fatalf("text of %d bytes", len(e.Text))
	}
	if _, err := Encode(e); err != nil {
		t.Fatalf("cut text does not encode: %v", err)
	}
}

func TestStorePushesRepublishBack(t *testing.T) {
	f := newHandlerFixture(t, false)
	blk := block.Data{Payload: []byte("held by several")}.Encode()
	id := block.Sum(blk)
	due := func() time.Time {
		f.d.repub.mu.Lock()
		defer f.d.repub.mu.Unlock()
		return f.d.repub.due[id]
	}
	wantStored(t, f.call(t, Store{Lifetime: 86400, Block: blk}))
	first := due()
	if d := first.Sub(f.now); d < RepublishInterval*9/10 || d > RepublishInterval*11/10 {
		t.Fatalf("republish due in %v, want the interval ±10%%", d)
	}
	// Another holder republishes it half an interval later: this node
	// need not republish it before an interval from then.
	f.now = f.now.Add(RepublishInterval / 2)
	wantStored(t, f.call(t, Store{Lifetime: 86400, Block: blk}))
	if second := due(); second.Sub(f.now) < RepublishInterval*9/10 {
		t.Fatalf("a fresh STORE left the date at %v (now %v)", second, f.now)
	}
	if n, _ := f.d.Republish(t.Context()); n != 0 {
		t.Fatalf("republished %d blocks that are not due", n)
	}
}

// TestListKeepsWhatMostNodesListed: past MaxListResults entries a List
// keeps the own store's, then those the most nodes listed: one liar's
// inventions, listed by the liar alone, go first.
func TestListKeepsWhatMostNodesListed(t *testing.T) {
	target := testID(0x42)
	col := &listCollector{target: target, entries: make(map[block.ID]*listRecord)}
	entry := func(tag byte, i int) listedEntry {
		id := target
		id[28], id[29], id[30], id[31] = tag, byte(i>>16), byte(i>>8), byte(i)
		return listedEntry{id: id, storedAt: t0}
	}
	var local, real, junk []listedEntry
	for i := range 10 {
		local = append(local, entry(1, i))
	}
	for i := range 50 {
		real = append(real, entry(2, i))
	}
	for i := range MaxListResults + 1000 {
		junk = append(junk, entry(3, i))
	}
	col.addAll(local, true)
	col.addAll(junk, false)
	col.addAll(real, false)
	col.addAll(real, false)
	out, dropped := col.sorted()
	if len(out) != MaxListResults || dropped != 1060 {
		t.Fatalf("kept %d, dropped %d; want %d kept and 1060 dropped", len(out), dropped, MaxListResults)
	}
	kept := make(map[block.ID]bool, len(out))
	for _, e := range out {
		kept[e.ID] = true
	}
	for _, e := range append(local, real...) {
		if !kept[e.id] {
			t.Fatalf("%v, listed by the own store or two nodes, was dropped for a liar's entries", e.id.Short())
		}
	}
}
