package kademlia

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/internal/recordtest"
	"github.com/flowmail/flowmail/internal/vectors"
	"github.com/flowmail/flowmail/transport"
)

// errName names the rule err breaks: its sentinel's text after
// "kademlia: ".
func errName(err error) string {
	if err == nil {
		return ""
	}
	for _, s := range append(wireErrors, ErrContactsMagic, ErrBadContact) {
		if errors.Is(err, s) {
			return strings.TrimPrefix(s.Error(), "kademlia: ")
		}
	}
	return "unexpected: " + err.Error()
}

// describe flattens a message into the fields a vector states.
func describe(m Message) map[string]string {
	out := map[string]string{"type": m.Type().String()}
	hx := hex.EncodeToString
	switch m := m.(type) {
	case Pong:
		out["observed"] = m.Observed.String()
	case FindNode:
		out["target"] = m.Target.String()
	case FindBlock:
		out["id"] = m.ID.String()
	case Nodes:
		out["count"] = strconv.Itoa(len(m.Contacts))
		for i, c := range m.Contacts {
			out[fmt.Sprintf("contact%d", i)] = c.ID.String() + "@" + c.Addr.String()
		}
	case BlockReply:
		out["lifetime"] = strconv.FormatUint(uint64(m.Lifetime), 10)
		out["block_id"] = block.Sum(m.Block).String()
		out["block_len"] = strconv.Itoa(len(m.Block))
	case Store:
		out["lifetime"] = strconv.FormatUint(uint64(m.Lifetime), 10)
		out["block_id"] = block.Sum(m.Block).String()
		out["block_len"] = strconv.Itoa(len(m.Block))
	case List:
		out["target"] = m.Target.String()
		out["bits"] = strconv.Itoa(int(m.Bits))
		out["since"] = strconv.FormatUint(m.Since, 10)
		out["has_after"] = strconv.FormatBool(m.HasAfter)
		out["after"] = m.After.String()
		out["limit"] = strconv.Itoa(int(m.Limit))
	case Listed:
		out["count"] = strconv.Itoa(len(m.Entries))
		out["more"] = strconv.FormatBool(m.More)
		for i, e := range m.Entries {
			out[fmt.Sprintf("entry%d", i)] = e.ID.String() + "@" + strconv.FormatUint(e.StoredAt, 10)
		}
	case Delete:
		out["id"] = m.ID.String()
		out["preimage"] = hx(m.Preimage[:])
	case *Error:
		out["code"] = strconv.Itoa(int(m.Code))
		out["text"] = m.Text
	}
	return out
}

func vectorInput(v vectors.Vector) ([]byte, error) {
	b, err := hex.DecodeString(v.Input)
	if err != nil {
		return nil, err
	}
	// zero_pad_to keeps huge inputs out of the file.
	if n, ok := v.Params["zero_pad_to"]; ok {
		total, err := strconv.Atoi(n)
		if err != nil || total < len(b) {
			return nil, fmt.Errorf("bad zero_pad_to %q", n)
		}
		b = append(b, make([]byte, total-len(b))...)
	}
	return b, nil
}

func checkMessageVector(v vectors.Vector) (map[string]string, string) {
	b, err := vectorInput(v)
	if err != nil {
		return nil, "bad input: " + err.Error()
	}
	if v.Function != "Decode" {
		return nil, "unknown function " + v.Function
	}
	m, err := Decode(b)
	if err != nil {
		return nil, errName(err)
	}
	enc, err := Encode(m)
	if err != nil || !bytes.Equal(enc, b) {
		return nil, fmt.Sprintf("re-encoding differs (%v)", err)
	}
	return describe(m), ""
}

// testID returns a recognisable ID.
func testID(seed byte) block.ID {
	var id block.ID
	for i := range id {
		id[i] = seed + byte(i*7)
	}
	return id
}

func mustEncode(t testing.TB, m Message) []byte {
	t.Helper()
	b, err := Encode(m)
	if err != nil {
		t.Fatalf("encoding %v: %v", m.Type(), err)
	}
	return b
}

// sampleMessages has one valid message of every type, for vectors, the
// round-trip test and the fuzz corpus.
func sampleMessages() map[string]Message {
	dataBlock := block.Data{Payload: []byte("a shard of mail")}.Encode()
	v4 := netip.MustParseAddrPort("192.0.2.7:4433")
	v6 := netip.MustParseAddrPort("[2001:db8::1]:443")
	var pre [32]byte
	copy(pre[:], bytes.Repeat([]byte{0x5a}, 32))
	var pre2 [32]byte // an index block's, beside its mail's shards'
	copy(pre2[:], bytes.Repeat([]byte{0xa5}, 32))
	full := make([]transport.Contact, MaxNodes)
	for i := range full {
		full[i] = transport.Contact{ID: testID(byte(i)), Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i), 1}), 4433)}
	}
	alice, err := recordtest.Load()
	if err != nil {
		panic(err) // testdata/vectors/record.json is part of the tree
	}
	return map[string]Message{
		"store_record":         Store{Lifetime: 3600, Block: alice.V1},
		"find_block_slot":      FindBlock{ID: alice.Slot},
		"block_record":         BlockReply{Lifetime: 3600, Block: alice.V2},
		"error_stale_record":   &Error{Code: CodeStale, Text: "record: stale: key log of 1 events against the 2 held"},
		"error_forked_record":  &Error{Code: CodeForked, Text: "record: forked: key log of 2 events against the 2 held"},
		"error_revoked_record": &Error{Code: CodeRevoked, Text: "record: revoked: the key log held for slot 24087237ea5514c7 ended it"},
		"ping":                 Ping{},
		"pong_ipv4":            Pong{Observed: v4},
		"pong_ipv6":            Pong{Observed: v6},
		"pong_ipv4_in_v6":      Pong{Observed: netip.AddrPortFrom(netip.AddrFrom16(v4.Addr().As16()), 4433)},
		"find_node":            FindNode{Target: testID(1)},
		"nodes_empty":          Nodes{},
		"nodes_two":            Nodes{Contacts: []transport.Contact{{ID: testID(2), Addr: v4}, {ID: testID(3), Addr: v6}}},
		"nodes_k":              Nodes{Contacts: full[:K]},
		"nodes_max":            Nodes{Contacts: full},
		"find_block":           FindBlock{ID: testID(4)},
		"block":                BlockReply{Lifetime: 3600, Block: dataBlock},
		"store":                Store{Lifetime: MaxLifetimeSeconds, Block: dataBlock},
		"ok":                   OK{},
		"list":                 List{Target: testID(5), Bits: 22, Since: 1767225600, Limit: 1000},
		"list_after":           List{Target: testID(5), Bits: 22, Since: 0, HasAfter: true, After: testID(6), Limit: 10},
		"list_bits_255":        List{Target: testID(5), Bits: 255, Limit: 1},
		"listed_empty":         Listed{},
		"listed_two_more":      Listed{Entries: []ListedEntry{{ID: testID(7), StoredAt: 1767225600}, {ID: testID(8), StoredAt: 1767229200}}, More: true},
		"delete":               Delete{ID: testID(9), Preimage: pre},
		"stored_empty":         Stored{},
		"delete_many_one":      DeleteMany{Deletes: []Delete{{ID: testID(9), Preimage: pre}}},
		"delete_many_three":    DeleteMany{Deletes: []Delete{{ID: testID(1), Preimage: pre2}, {ID: testID(2), Preimage: pre}, {ID: testID(9), Preimage: pre}}},
		"deleted_three":        Deleted{Statuses: []DeleteStatus{StatusDeleted, StatusNotHeld, StatusForbidden}},
		"store_many_two":       StoreMany{Lifetime: 3600, Blocks: [][]byte{dataBlock, dataBlock[:len(dataBlock)-1]}},
		"stored_many_four":     StoredMany{Closer: []uint8{0, 2, MaxNodes, StoreRefused}},
		"stored_two":           Stored{Contacts: []transport.Contact{{ID: testID(2), Addr: v4}, {ID: testID(3), Addr: v6}}},
		"error_empty":          &Error{Code: CodeNotFound},
		"error_text":           &Error{Code: CodeClientMode, Text: "client mode: this node does not store"},
		"error_max_text":       &Error{Code: CodeMalformed, Text: strings.Repeat("é", MaxErrorText/2)},
	}
}

func genMessageVectors() vectors.File {
	hx := hex.EncodeToString
	var vs []vectors.Vector
	samples := sampleMessages()
	names := make([]string, 0, len(samples))
	for n := range samples {
		names = append(names, n)
	}
	slices.Sort(names)
	enc := make(map[string][]byte)
	for _, n := range names {
		b, err := Encode(samples[n])
		if err != nil {
			panic(err) // a sample that does not encode is a bug in this file
		}
		enc[n] = b
		vs = append(vs, vectors.Vector{Name: n, Function: "Decode", Input: hx(b)})
	}
	bad := func(name, input, errText, note string) {
		vs = append(vs, vectors.Vector{Name: name, Function: "Decode", Input: input, Error: errText, Note: note})
	}
	plus := func(b []byte, extra ...byte) string { return hx(append(bytes.Clone(b), extra...)) }
	with := func(b []byte, i int, v byte) []byte {
		c := bytes.Clone(b)
		c[i] = v
		return c
	}
	bad("empty", "", "truncated", "every message has a msg_type")
	bad("unknown_type_00", "00", "unknown message type", "unknown msg_type values MUST be rejected")
	bad("unknown_type_21", "21", "unknown message type", "")
	bad("unknown_type_01_hello", "01", "unknown message type", "HELLO belongs to the transport, not to section 8")
	bad("ping_trailing", plus(enc["ping"], 0), "trailing bytes", "trailing bytes MUST be rejected")
	bad("ok_trailing", plus(enc["ok"], 0), "trailing bytes", "")
	bad("pong_truncated", hx(enc["pong_ipv6"][:10]), "truncated", "")
	bad("pong_no_port", hx(enc["pong_ipv4"][:6]), "truncated", "")
	bad("pong_family_5", hx(with(enc["pong_ipv4"], 1, 5)), "unknown address family", "addr family is 4 or 6")
	bad("pong_trailing", plus(enc["pong_ipv4"], 0), "trailing bytes", "")
	bad("find_node_truncated", hx(enc["find_node"][:32]), "truncated", "")
	bad("find_node_trailing", plus(enc["find_node"], 1), "trailing bytes", "")
	bad("find_block_truncated", hx(enc["find_block"][:1]), "truncated", "")
	bad("nodes_no_count", "13", "truncated", "")
	bad("nodes_count_above_max", hx(append([]byte{0x13, MaxNodes + 1}, enc["nodes_max"][2:]...)), "count above limit", "NODES lists at most MaxNodes = K + K/4 contacts")
	bad("nodes_count_255", "13ff", "count above limit", "")
	bad("nodes_truncated_entry", hx(with(enc["nodes_two"][:len(enc["nodes_two"])-1], 1, 2)), "truncated", "")
	bad("nodes_count_exceeds_entries", hx(with(enc["nodes_two"], 1, 3)), "truncated", "")
	bad("nodes_bad_family", hx(with(enc["nodes_two"], 2+32, 0)), "unknown address family", "")
	bad("nodes_trailing", plus(enc["nodes_two"], 0), "trailing bytes", "")
	bad("stored_no_count", "1b", "truncated", "STORED's body is NODES'")
	bad("stored_count_above_max", hx(append([]byte{0x1b, MaxNodes + 1}, enc["nodes_max"][2:]...)), "count above limit", "STORED names at most MaxNodes contacts")
	bad("stored_trailing", plus(enc["stored_two"], 0), "trailing bytes", "")
	sm := enc["store_many_two"] // type, lifetime [1:5], count [5:7], then length u32 || block
	first := 7 + 4 + int(binary.BigEndian.Uint32(sm[7:11]))
	bad("store_many_zero_blocks", hx(append(bytes.Clone(sm[:5]), 0, 0)), "count out of range", "STORE_MANY carries 1 to MaxStoreMany blocks")
	bad("store_many_count_above_max", hx(slices.Concat(sm[:5], []byte{0, MaxStoreMany + 1}, sm[7:])), "count out of range", "")
	bad("store_many_lifetime_zero", hx(slices.Concat(sm[:1], []byte{0, 0, 0, 0}, sm[5:])), "lifetime out of range", "lifetime 1 to MaxLifetime, as STORE's")
	bad("store_many_zero_length_block", hx(slices.Concat(sm[:first], []byte{0, 0, 0, 0}, sm[first+4:])), "block size out of range", "each block 1 to MaxBlockSize bytes")
	bad("store_many_block_above_max", hx(slices.Concat(sm[:first], binary.BigEndian.AppendUint32(nil, block.MaxBlockSize+1), sm[first+4:])), "block size out of range", "")
	bad("store_many_truncated_block", hx(sm[:len(sm)-1]), "truncated", "")
	bad("store_many_count_exceeds_blocks", hx(with(sm, 6, 3)), "truncated", "")
	bad("store_many_trailing", plus(sm, 0), "trailing bytes", "")
	bad("stored_many_zero", "1f0000", "count out of range", "STORED_MANY carries 1 to MaxStoreMany statuses")
	bad("stored_many_above_max_nodes", hx(with(enc["stored_many_four"], 3, MaxNodes+1)), "unknown status", "an entry is 0 to MaxNodes (held; contacts known closer) or 255 (refused)")
	bad("stored_many_254", hx(with(enc["stored_many_four"], 3, 254)), "unknown status", "")
	bad("stored_many_truncated", hx(enc["stored_many_four"][:4]), "truncated", "")
	bad("stored_many_trailing", plus(enc["stored_many_four"], 0), "trailing bytes", "")
	dm3 := enc["delete_many_three"] // type, count [1:3], then id [32] || preimage [32] from 3
	bad("delete_many_zero_ids", "1c0000", "count out of range", "DELETE_MANY names 1 to MaxDeleteMany IDs")
	bad("delete_many_count_above_max", hx(slices.Concat(dm3[:1], []byte{0, MaxDeleteMany + 1}, dm3[3:])), "count out of range", "")
	bad("delete_many_truncated_entry", hx(dm3[:len(dm3)-1]), "truncated", "")
	bad("delete_many_count_exceeds_entries", hx(with(dm3, 2, 4)), "truncated", "")
	bad("delete_many_repeated_id", hx(slices.Concat(dm3[:3], dm3[3:67], dm3[3:67], dm3[131:])), "IDs not in ascending order", "IDs strictly ascending: none twice")
	bad("delete_many_trailing", plus(enc["delete_many_one"], 0), "trailing bytes", "")
	bad("deleted_zero", "1d0000", "count out of range", "DELETED carries 1 to MaxDeleteMany statuses")
	bad("deleted_status_3", hx(with(enc["deleted_three"], 3, 3)), "unknown status", "a status is 0 (deleted), 1 (not held) or 2 (refused)")
	bad("deleted_truncated", hx(enc["deleted_three"][:4]), "truncated", "")
	bad("deleted_trailing", plus(enc["deleted_three"], 0), "trailing bytes", "")
	bad("block_lifetime_zero", hx(append([]byte{0x15, 0, 0, 0, 0}, enc["block"][5:]...)), "lifetime out of range", "lifetime is 1 to MaxLifetime")
	bad("store_lifetime_above_max", hx(append([]byte{0x16, 0, 0x27, 0x8d, 0x01}, enc["store"][5:]...)), "lifetime out of range", "a node MUST refuse a lifetime above MaxLifetime")
	bad("store_no_block", hx(enc["store"][:5]), "block size out of range", "")
	bad("store_truncated_lifetime", hx(enc["store"][:3]), "truncated", "")
	vs = append(vs, vectors.Vector{Name: "store_oversized_block", Function: "Decode", Input: hx(enc["store"][:8]),
		Params: map[string]string{"zero_pad_to": strconv.Itoa(5 + block.MaxBlockSize + 1)}, Error: "block size out of range", Note: "a block is at most MaxBlockSize"})
	bad("list_truncated", hx(enc["list"][:len(enc["list"])-1]), "truncated", "")
	bad("list_trailing", plus(enc["list"], 0), "trailing bytes", "")
	bad("list_has_after_2", hx(with(enc["list_after"], 1+32+1+8, 2)), "flag not 0 or 1", "has_after MUST be 0 or 1")
	bad("list_after_without_has_after", hx(with(enc["list"], 1+32+1+8+1+5, 1)), "after is not zero while has_after is 0", "after MUST be zero when has_after is 0")
	bad("listed_count_above_max", hx(append([]byte{0x19, 0x03, 0xe9}, make([]byte, 1001*40+1)...)), "count above limit", "LISTED carries at most MaxListEntries")
	bad("listed_count_exceeds_entries", hx(with(enc["listed_two_more"], 2, 3)), "truncated", "")
	bad("listed_no_more", hx(enc["listed_two_more"][:len(enc["listed_two_more"])-1]), "truncated", "")
	bad("listed_more_2", hx(with(enc["listed_two_more"], len(enc["listed_two_more"])-1, 2)), "flag not 0 or 1", "more is 0 or 1")
	bad("listed_trailing", plus(enc["listed_empty"], 0), "trailing bytes", "")
	bad("delete_truncated", hx(enc["delete"][:64]), "truncated", "")
	bad("delete_trailing", plus(enc["delete"], 0), "trailing bytes", "")
	bad("error_text_too_long", hx(append([]byte{0x7f, 0, 1, 0x01, 0x01}, bytes.Repeat([]byte{'a'}, MaxErrorText+1)...)), "error text too long", "msg_len is 0 to 256")
	bad("error_text_not_utf8", "7f00010002c328", "error text is not UTF-8", "msg is UTF-8")
	bad("error_text_truncated", hx(enc["error_text"][:len(enc["error_text"])-1]), "truncated", "")
	bad("error_no_length", "7f0004", "truncated", "")
	bad("error_trailing", plus(enc["error_empty"], 0), "trailing bytes", "")
	return vectors.File{
		Description: fmt.Sprintf("Kademlia messages (docs/PROTOCOL.md section 8), fed to kademlia.Decode; an ok vector re-encodes to its input. K=%d, MaxListEntries=%d, MaxErrorText=%d, MaxBlockSize=%d. LIST bits is a u8, so no input can carry bits above 256.", K, MaxListEntries, MaxErrorText, block.MaxBlockSize),
		Vectors:     vs,
	}
}

func TestMessageVectors(t *testing.T) {
	vectors.Check(t, "kademlia_messages.json", genMessageVectors, checkMessageVector)
}

func TestEveryMessageRoundTrips(t *testing.T) {
	seen := make(map[MsgType]bool)
	for name, m := range sampleMessages() {
		b := mustEncode(t, m)
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if again := mustEncode(t, got); !bytes.Equal(again, b) {
			t.Fatalf("%s: re-encoding gives %x, want %x", name, again, b)
		}
		seen[m.Type()] = true
	}
	for _, ty := range []MsgType{TypePing, TypePong, TypeFindNode, TypeNodes, TypeFindBlock, TypeBlock, TypeStore, TypeOK, TypeList, TypeListed, TypeDelete, TypeStored, TypeDeleteMany, TypeDeleted, TypeStoreMany, TypeStoredMany, TypeError} {
		if !seen[ty] {
			t.Errorf("no sample of %v", ty)
		}
	}
}

func TestEncodeRefusesWhatDecodeWouldReject(t *testing.T) {
	tooMany := make([]transport.Contact, MaxNodes+1)
	for i := range tooMany {
		tooMany[i] = transport.Contact{ID: testID(byte(i)), Addr: netip.MustParseAddrPort("192.0.2.1:1")}
	}
	blk := block.Data{Payload: []byte{1}}.Encode()
	cases := map[string]struct {
		m    Message
		want error
	}{
		"nodes above MaxNodes":   {Nodes{Contacts: tooMany}, ErrTooMany},
		"listed above max":       {Listed{Entries: make([]ListedEntry, MaxListEntries+1)}, ErrTooMany},
		"store lifetime zero":    {Store{Lifetime: 0, Block: blk}, ErrLifetime},
		"block lifetime too big": {BlockReply{Lifetime: MaxLifetimeSeconds + 1, Block: blk}, ErrLifetime},
		"store empty block":      {Store{Lifetime: 1}, ErrBlockSize},
		"error text too long":    {&Error{Text: strings.Repeat("x", MaxErrorText+1)}, ErrTextTooLong},
		"error text not utf8":    {&Error{Text: "\xff"}, ErrTextUTF8},
		"after without flag":     {List{After: testID(1)}, ErrAfterNonzero},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Encode(tc.m); !errors.Is(err, tc.want) {
				t.Fatalf("Encode error %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := Encode(Pong{}); err == nil {
		t.Fatal("Encode of a PONG without an address succeeded")
	}
}

func FuzzMessage(f *testing.F) {
	for _, v := range genMessageVectors().Vectors {
		if b, err := hex.DecodeString(v.Input); err == nil && v.Params == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			if m != nil {
				t.Fatal("Decode returned a message with an error")
			}
			return
		}
		enc, err := Encode(m)
		if err != nil {
			t.Fatalf("decoded %x but cannot re-encode: %v", b, err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding %x gives %x", b, enc)
		}
	})
}
