package kademlia

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/blockstore"
	"github.com/flowmail/flowmail/internal/recordtest"
	"github.com/flowmail/flowmail/record"
	"github.com/flowmail/flowmail/transport"
)

// The handler's side of docs/PROTOCOL.md 15.4: a record STORE is kept at
// its slot, refused with its own code, and FIND_BLOCK of the slot answers
// the newest record held.

func TestHandleRecordStoreKeepsTheNewestAtItsSlot(t *testing.T) {
	f := newHandlerFixture(t, false)
	a := recordtest.MustLoad(t)
	wantStored(t, f.call(t, Store{Lifetime: 3600, Block: a.V1}))
	wantStored(t, f.call(t, Store{Lifetime: 7200, Block: a.V2}))
	got, ok := f.call(t, FindBlock{ID: a.Slot}).(BlockReply)
	if !ok || !bytes.Equal(got.Block, a.V2) || got.Lifetime != 7200 {
		t.Fatalf("FIND_BLOCK of the slot: %#v, want V2 with 7200 s", got)
	}
	// Never by its block_id.
	if _, ok := f.call(t, FindBlock{ID: block.Sum(a.V2)}).(Nodes); !ok {
		t.Fatal("a record is served under its block_id")
	}
}

func TestHandleRecordRefusalsHaveTheirOwnCodes(t *testing.T) {
	a := recordtest.MustLoad(t)
	tests := []struct {
		name       string
		held, next []byte
		code       ErrorCode
		text       string // what the text of a code-3 refusal names
	}{
		{"ReplayedOlder", a.V2, a.V1, CodeStale, ""},
		{"ForkedChain", a.V2, a.Fork, CodeForked, ""},
		{"AfterRevocation", a.Revoked, a.Fork, CodeRevoked, ""},
		{"OlderAfterRevocation", a.Revoked, a.V1, CodeRevoked, ""},
		{"EventAfterRevocation", nil, a.AfterRevocation, CodeRevoked, ""},
		{"SignedByTheWrongKey", a.V1, a.WrongKey, CodeInvalidBlock, record.ErrWrongKey.Error()},
		{"Over4KiB", a.V2, a.TooLarge, CodeInvalidBlock, record.ErrTooLarge.Error()},
		{"DelegationForked", a.D2, a.D2Fork, CodeForked, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newHandlerFixture(t, false)
			if tc.held != nil {
				wantStored(t, f.call(t, Store{Lifetime: 3600, Block: tc.held}))
			}
			resp := f.call(t, Store{Lifetime: 3600, Block: tc.next})
			wantError(t, resp, tc.code)
			if e := resp.(*Error); !strings.Contains(e.Text, tc.text) {
				t.Fatalf("ERROR text %q does not say %q", e.Text, tc.text)
			}
			if tc.held != nil {
				slot, _ := record.Decode(tc.held)
				if got, ok := f.call(t, FindBlock{ID: slot.Slot()}).(BlockReply); !ok || !bytes.Equal(got.Block, tc.held) {
					t.Fatal("the held version is no longer served")
				}
			}
		})
	}
}

// The codes come back to a requester as errors the record package
// names.
func TestRecordErrorCodesUnwrapToTheRecordReasons(t *testing.T) {
	for code, want := range map[ErrorCode]error{CodeStale: record.ErrStale, CodeForked: record.ErrForked, CodeRevoked: record.ErrRevoked} {
		var err error = &Error{Code: code}
		if !errors.Is(err, want) {
			t.Errorf("ERROR %d does not unwrap to %v", code, want)
		}
	}
	if errors.Is(&Error{Code: CodeInvalidBlock}, record.ErrRevoked) {
		t.Error("ERROR 3 names a record reason")
	}
}

func TestHandleRecordStoresAreLimitedPerSource(t *testing.T) {
	f := newHandlerFixture(t, false)
	a := recordtest.MustLoad(t)
	// The same held record again costs no verification: never limited.
	wantStored(t, f.call(t, Store{Lifetime: 3600, Block: a.V2}))
	for range 3 * RecordBurst {
		wantStored(t, f.call(t, Store{Lifetime: 3600, Block: a.V2}))
	}
	// Records that need checking: the burst, then refusals (7), then one
	// more per second.
	for i := range RecordBurst - 1 {
		if e, ok := f.call(t, Store{Lifetime: 3600, Block: a.V1}).(*Error); !ok || e.Code != CodeStale {
			t.Fatalf("record STORE %d within the burst: %#v", i, e)
		}
	}
	wantError(t, f.call(t, Store{Lifetime: 3600, Block: a.V1}), CodeOverloaded)
	// Another node of the same /24 has its own node budget.
	other := f.peer
	f.peer = transport.Peer{ID: testID(0x12), Addr: netip.MustParseAddrPort("198.51.100.8:5000")}
	wantError(t, f.call(t, Store{Lifetime: 3600, Block: a.V1}), CodeStale)
	f.peer = other
	f.now = f.now.Add(time.Second)
	wantError(t, f.call(t, Store{Lifetime: 3600, Block: a.V1}), CodeStale)
	wantError(t, f.call(t, Store{Lifetime: 3600, Block: a.V1}), CodeOverloaded)
	// Other blocks are not limited here.
	wantStored(t, f.call(t, Store{Lifetime: 3600, Block: block.Data{Payload: []byte("x")}.Encode()}))
}

func TestRecordLimiterBoundsAGroupOfManyNodes(t *testing.T) {
	var l recordLimiter
	group := netip.MustParsePrefix("203.0.113.0/24")
	allowed := 0
	for i := range 2 * RecordGroupBurst {
		if l.allow(testID(byte(i)), group, t0) {
			allowed++
		}
	}
	// 256 distinct node IDs of one group get the group's burst, no more.
	if allowed != RecordGroupBurst {
		t.Fatalf("%d records allowed from one /24, want the group burst %d", allowed, RecordGroupBurst)
	}
	if !l.allow(testID(1), netip.MustParsePrefix("192.0.2.0/24"), t0) {
		t.Fatal("another group is limited too")
	}
}

func TestHandleStoreChargesTheSendersSources(t *testing.T) {
	f := newHandlerFixture(t, false)
	// A full store: only the budget of the sender decides whether it may
	// evict.
	st := blockstore.NewMemory(blockstore.Config{Self: f.d.cfg.ID, QuotaBytes: 4000, NodeBudget: 2500, GroupBudget: -1, Clock: fixtureClock{f: f}})
	t.Cleanup(func() { st.Close() })
	f.d.cfg.Store = st
	for i := range 3 {
		wantStored(t, f.call(t, Store{Lifetime: 3600, Block: block.Data{Payload: bytes.Repeat([]byte{byte(i)}, 1000)}.Encode()}))
	}
	// Past its budget, the sender is told to retry later (7); another
	// node is not.
	var refused bool
	for i := range 8 {
		e, ok := f.call(t, Store{Lifetime: 3600, Block: block.Data{Payload: bytes.Repeat([]byte{byte(10 + i)}, 1000)}.Encode()}).(*Error)
		if ok && e.Code == CodeOverloaded {
			refused = true
			break
		}
	}
	if !refused {
		t.Fatal("a sender past its budget was never refused with ERROR 7")
	}
	f.peer = transport.Peer{ID: testID(0x13), Addr: netip.MustParseAddrPort("192.0.2.9:5000")}
	if e, ok := f.call(t, Store{Lifetime: 3600, Block: block.Data{Payload: bytes.Repeat([]byte{99}, 1000)}.Encode()}).(*Error); ok && e.Code == CodeOverloaded {
		t.Fatal("another node is refused for the first one's budget")
	}
}
