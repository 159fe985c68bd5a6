package kademlia

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unicode/utf8"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/record"
	"github.com/flowmail/flowmail/transport"
)

// Protocol constants of docs/PROTOCOL.md sections 8 and 11.
const (
	// K is the replication factor and the bucket size.
	K = 20
	// MaxNodes is the most contacts a NODES message may carry: K and a
	// quarter more, which a node answers with (docs/PROTOCOL.md section
	// 8: after a mass failure up to a quarter of the contacts a node
	// still counts live may be dead, and the extra quarter keeps the live
	// K closest in its answer).
	MaxNodes = K + K/4
	// Alpha is how many requests a lookup keeps in flight.
	Alpha = 3
	// BlockAlpha is how many a FIND_BLOCK lookup keeps in flight: each
	// holder's answer carries the whole block.
	BlockAlpha = 1
	// MaxListEntries bounds the entries of one LISTED message.
	MaxListEntries = 1000
	// MaxDeleteMany bounds the IDs of one DELETE_MANY: more than a
	// group's shards at one holder, and a few milliseconds of its store's
	// work.
	MaxDeleteMany = 128
	// MaxStoreMany bounds the blocks of one STORE_MANY (whose bytes the
	// transport's frame bounds too): a group's shards at one holder.
	MaxStoreMany = 128
	// MaxErrorText bounds the text of an ERROR message, in bytes.
	MaxErrorText = 256
	// MaxLifetimeSeconds is block.MaxLifetime as the u32 the wire carries.
	MaxLifetimeSeconds = uint32(block.MaxLifetime / 1e9)
)

// MsgType is the first byte of every request and response.
type MsgType uint8

// Message types (docs/PROTOCOL.md section 8). Numbers are never reused.
const (
	TypePing       MsgType = 0x10
	TypePong       MsgType = 0x11
	TypeFindNode   MsgType = 0x12
	TypeNodes      MsgType = 0x13
	TypeFindBlock  MsgType = 0x14
	TypeBlock      MsgType = 0x15
	TypeStore      MsgType = 0x16
	TypeOK         MsgType = 0x17
	TypeList       MsgType = 0x18
	TypeListed     MsgType = 0x19
	TypeDelete     MsgType = 0x1a
	TypeStored     MsgType = 0x1b
	TypeDeleteMany MsgType = 0x1c
	TypeDeleted    MsgType = 0x1d
	TypeStoreMany  MsgType = 0x1e
	TypeStoredMany MsgType = 0x1f
	TypeError      MsgType = 0x7f
)

func (t MsgType) String() string {
	switch t {
	case TypePing:
		return "PING"
	case TypePong:
		return "PONG"
	case TypeFindNode:
		return "FIND_NODE"
	case TypeNodes:
		return "NODES"
	case TypeFindBlock:
		return "FIND_BLOCK"
	case TypeBlock:
		return "BLOCK"
	case TypeStore:
		return "STORE"
	case TypeOK:
		return "OK"
	case TypeList:
		return "LIST"
	case TypeListed:
		return "LISTED"
	case TypeDelete:
		return "DELETE"
	case TypeStored:
		return "STORED"
	case TypeDeleteMany:
		return "DELETE_MANY"
	case TypeDeleted:
		return "DELETED"
	case TypeStoreMany:
		return "STORE_MANY"
	case TypeStoredMany:
		return "STORED_MANY"
	case TypeError:
		return "ERROR"
	}
	return fmt.Sprintf("type(%#02x)", uint8(t))
}

// ErrorCode is the code of an ERROR message.
type ErrorCode uint16

// Error codes (docs/PROTOCOL.md section 8).
const (
	CodeMalformed    ErrorCode = 1
	CodeUnknownType  ErrorCode = 2
	CodeInvalidBlock ErrorCode = 3
	CodeNotFound     ErrorCode = 4
	CodeForbidden    ErrorCode = 5
	CodeStorageFull  ErrorCode = 6
	CodeOverloaded   ErrorCode = 7
	CodeClientMode   ErrorCode = 8
	CodeInternal     ErrorCode = 9
	// Refusals of a record STORE by the version the node holds at its
	// slot (docs/PROTOCOL.md 15.4).
	CodeStale   ErrorCode = 10
	CodeForked  ErrorCode = 11
	CodeRevoked ErrorCode = 12
)

func (c ErrorCode) String() string {
	switch c {
	case CodeMalformed:
		return "malformed request"
	case CodeUnknownType:
		return "unknown message type"
	case CodeInvalidBlock:
		return "invalid block"
	case CodeNotFound:
		return "not found"
	case CodeForbidden:
		return "forbidden"
	case CodeStorageFull:
		return "storage full"
	case CodeOverloaded:
		return "overloaded"
	case CodeClientMode:
		return "client mode"
	case CodeInternal:
		return "internal error"
	case CodeStale:
		return "stale record"
	case CodeForked:
		return "forked record"
	case CodeRevoked:
		return "revoked"
	}
	return fmt.Sprintf("error code %d", uint16(c))
}

// Errors of Decode and Encode, wrapped with detail. Test vectors name them
// by the text after "kademlia: ".
var (
	ErrTruncated    = errors.New("kademlia: truncated")
	ErrTrailing     = errors.New("kademlia: trailing bytes")
	ErrUnknownType  = errors.New("kademlia: unknown message type")
	ErrTooMany      = errors.New("kademlia: count above limit")
	ErrFlag         = errors.New("kademlia: flag not 0 or 1")
	ErrAfterNonzero = errors.New("kademlia: after is not zero while has_after is 0")
	ErrTextTooLong  = errors.New("kademlia: error text too long")
	ErrTextUTF8     = errors.New("kademlia: error text is not UTF-8")
	ErrAddrFamily   = errors.New("kademlia: unknown address family")
	ErrLifetime     = errors.New("kademlia: lifetime out of range")
	ErrBlockSize    = errors.New("kademlia: block size out of range")
	ErrIDOrder      = errors.New("kademlia: IDs not in ascending order")
	ErrCount        = errors.New("kademlia: count out of range")
	ErrStatus       = errors.New("kademlia: unknown status")
)

// wireErrors lists the sentinels above, for naming a decode error.
var wireErrors = []error{ErrTruncated, ErrTrailing, ErrUnknownType, ErrTooMany, ErrFlag, ErrAfterNonzero, ErrTextTooLong, ErrTextUTF8, ErrAddrFamily, ErrLifetime, ErrBlockSize, ErrIDOrder, ErrCount, ErrStatus}

// Message is one decoded request or response.
type Message interface {
	Type() MsgType
	// appendBody appends the body after msg_type, or fails if the message
	// breaks a rule of its layout.
	appendBody(dst []byte) ([]byte, error)
}

// Ping asks for a Pong.
type Ping struct{}

// Pong tells the caller the address its packets came from.
type Pong struct{ Observed netip.AddrPort }

// FindNode asks for the contacts closest to Target.
type FindNode struct{ Target block.ID }

// Nodes lists at most K contacts.
type Nodes struct{ Contacts []transport.Contact }

// Stored answers a STORE: the block is held, and Contacts are the fresh
// contacts the responder knows closer to its ID (a record's slot) than
// itself, at most MaxNodes, so a put whose STOREs went to the wrong
// nodes learns where they belong (docs/PROTOCOL.md 8, 9.7).
type Stored struct{ Contacts []transport.Contact }

// FindBlock asks for a block, or the contacts closest to its ID.
type FindBlock struct{ ID block.ID }

// BlockReply carries a block and its remaining lifetime in seconds.
type BlockReply struct {
	Lifetime uint32
	Block    []byte
}

// Store asks the receiver to keep a block for Lifetime seconds.
type Store struct {
	Lifetime uint32
	Block    []byte
}

// OK acknowledges a Store or a Delete.
type OK struct{}

// List asks for the index blocks whose IDs share at least Bits leading
// bits with Target, stored at or after Since (Unix seconds), after After
// when HasAfter, at most Limit of them.
type List struct {
	Target   block.ID
	Bits     uint8
	Since    uint64
	HasAfter bool
	After    block.ID
	Limit    uint16
}

// Listed answers a List; More reports that entries were left out.
type Listed struct {
	Entries []ListedEntry
	More    bool
}

// ListedEntry is one block in a Listed message.
type ListedEntry struct {
	ID       block.ID
	StoredAt uint64 // Unix seconds
}

// maxUnixSeconds caps the u64 times of the wire (since, stored_at) where
// time.Unix still counts right: beyond about 2^63 - 2^36 it wraps.
const maxUnixSeconds = 1 << 62

// unixTime is a wire time (List.Since, ListedEntry.StoredAt) as a
// time.Time, capped at maxUnixSeconds.
func unixTime(s uint64) time.Time { return time.Unix(int64(min(s, maxUnixSeconds)), 0) }

// Delete asks the receiver to drop ID, proving the right with Preimage.
type Delete struct {
	ID       block.ID
	Preimage [32]byte
}

// DeleteMany asks a node to drop several blocks, each proved with the
// preimage of its deletion hash (a mail's index block and data blocks),
// IDs strictly ascending.
type DeleteMany struct{ Deletes []Delete }

// DeleteStatus is what a DELETED answer says of one ID.
type DeleteStatus uint8

// Statuses of a DELETED answer (docs/PROTOCOL.md 8).
const (
	StatusDeleted   DeleteStatus = 0 // held, and dropped
	StatusNotHeld   DeleteStatus = 1
	StatusForbidden DeleteStatus = 2 // a wrong preimage, or a tombstone already
)

// Deleted answers a DELETE_MANY: one status per ID, in its order.
type Deleted struct{ Statuses []DeleteStatus }

// StoreMany asks a node to keep several data blocks (a mail's shards
// that belong at it) for Lifetime seconds.
type StoreMany struct {
	Lifetime uint32
	Blocks   [][]byte
}

// StoredMany answers a STORE_MANY, one entry per block in its order: how
// many fresh contacts the responder knows closer to the block's ID than
// itself, 0 to MaxNodes, when it holds the block, or StoreRefused. A put
// whose holders know closer nodes than it does learns that its routing
// table missed them (docs/PROTOCOL.md 8, 9.7).
type StoredMany struct{ Closer []uint8 }

// StoreRefused is the STORED_MANY entry of a block the responder did not
// take: not a data block, invalid, or over one of its limits.
const StoreRefused = 0xff

// Error is the ERROR message; it is also the Go error a request returns
// when the peer answered with one.
type Error struct {
	Code ErrorCode
	Text string
}

// Unwrap gives the record package's reason for the record refusals, so
// errors.Is(err, record.ErrStale) holds whether the node or a peer
// refused.
func (e *Error) Unwrap() error {
	switch e.Code {
	case CodeStale:
		return record.ErrStale
	case CodeForked:
		return record.ErrForked
	case CodeRevoked:
		return record.ErrRevoked
	}
	return nil
}

func (e *Error) Error() string {
	if e.Text == "" {
		return fmt.Sprintf("kademlia: peer answered error %d (%v)", e.Code, e.Code)
	}
	return fmt.Sprintf("kademlia: peer answered error %d (%v): %s", e.Code, e.Code, e.Text)
}

func (Ping) Type() MsgType       { return TypePing }
func (Pong) Type() MsgType       { return TypePong }
func (FindNode) Type() MsgType   { return TypeFindNode }
func (Nodes) Type() MsgType      { return TypeNodes }
func (FindBlock) Type() MsgType  { return TypeFindBlock }
func (BlockReply) Type() MsgType { return TypeBlock }
func (Store) Type() MsgType      { return TypeStore }
func (OK) Type() MsgType         { return TypeOK }
func (List) Type() MsgType       { return TypeList }
func (Listed) Type() MsgType     { return TypeListed }
func (Delete) Type() MsgType     { return TypeDelete }
func (Stored) Type() MsgType     { return TypeStored }
func (DeleteMany) Type() MsgType { return TypeDeleteMany }
func (Deleted) Type() MsgType    { return TypeDeleted }
func (StoreMany) Type() MsgType  { return TypeStoreMany }
func (StoredMany) Type() MsgType { return TypeStoredMany }
func (*Error) Type() MsgType     { return TypeError }

// Encode returns msg_type || body, or an error when m breaks a rule of its
// layout (too many contacts, a text too long, an invalid address...).
func Encode(m Message) ([]byte, error) {
	return m.appendBody(append(make([]byte, 0, 1+bodySizeHint(m)), byte(m.Type())))
}

// bodySizeHint is an upper bound of the body size for the variable
// messages, so Encode allocates once.
func bodySizeHint(m Message) int {
	const maxAddr = 1 + 16 + 2
	switch m := m.(type) {
	case Nodes:
		return 1 + len(m.Contacts)*(block.IDSize+maxAddr)
	case Stored:
		return 1 + len(m.Contacts)*(block.IDSize+maxAddr)
	case DeleteMany:
		return 2 + len(m.Deletes)*(block.IDSize+32)
	case Deleted:
		return 2 + len(m.Statuses)
	case StoreMany:
		n := 4 + 2
		for _, b := range m.Blocks {
			n += 4 + len(b)
		}
		return n
	case StoredMany:
		return 2 + len(m.Closer)
	case Listed:
		return 2 + len(m.Entries)*(block.IDSize+8) + 1
	case Store:
		return 4 + len(m.Block)
	case BlockReply:
		return 4 + len(m.Block)
	case *Error:
		return 4 + len(m.Text)
	}
	return 2*block.IDSize + 64
}

func (Ping) appendBody(dst []byte) ([]byte, error) { return dst, nil }
func (OK) appendBody(dst []byte) ([]byte, error)   { return dst, nil }

func (m Pong) appendBody(dst []byte) ([]byte, error) { return appendAddr(dst, m.Observed) }

func (m FindNode) appendBody(dst []byte) ([]byte, error) { return append(dst, m.Target[:]...), nil }

func (m FindBlock) appendBody(dst []byte) ([]byte, error) { return append(dst, m.ID[:]...), nil }

func (m Nodes) appendBody(dst []byte) ([]byte, error) {
	if len(m.Contacts) > MaxNodes {
		return nil, fmt.Errorf("%w: NODES with %d contacts, limit %d", ErrTooMany, len(m.Contacts), MaxNodes)
	}
	dst = append(dst, byte(len(m.Contacts)))
	var err error
	for _, c := range m.Contacts {
		dst = append(dst, c.ID[:]...)
		if dst, err = appendAddr(dst, c.Addr); err != nil {
			return nil, err
		}
	}
	return dst, nil
}

// appendBody: STORED's body is NODES'.
func (m Stored) appendBody(dst []byte) ([]byte, error) { return Nodes(m).appendBody(dst) }

func appendLifetimeBlock(dst []byte, lifetime uint32, b []byte) ([]byte, error) {
	if lifetime == 0 || lifetime > MaxLifetimeSeconds {
		return nil, fmt.Errorf("%w: %d s, want 1 to %d", ErrLifetime, lifetime, MaxLifetimeSeconds)
	}
	if len(b) == 0 || len(b) > block.MaxBlockSize {
		return nil, fmt.Errorf("%w: %d bytes, want 1 to %d", ErrBlockSize, len(b), block.MaxBlockSize)
	}
	dst = binary.BigEndian.AppendUint32(dst, lifetime)
	return append(dst, b...), nil
}

func (m BlockReply) appendBody(dst []byte) ([]byte, error) {
	return appendLifetimeBlock(dst, m.Lifetime, m.Block)
}

func (m Store) appendBody(dst []byte) ([]byte, error) {
	return appendLifetimeBlock(dst, m.Lifetime, m.Block)
}

func (m List) appendBody(dst []byte) ([]byte, error) {
	if !m.HasAfter && !m.After.IsZero() {
		return nil, fmt.Errorf("%w: LIST", ErrAfterNonzero)
	}
	dst = append(dst, m.Target[:]...)
	dst = append(dst, m.Bits)
	dst = binary.BigEndian.AppendUint64(dst, m.Since)
	dst = append(dst, boolByte(m.HasAfter))
	dst = append(dst, m.After[:]...)
	return binary.BigEndian.AppendUint16(dst, m.Limit), nil
}

func (m Listed) appendBody(dst []byte) ([]byte, error) {
	if len(m.Entries) > MaxListEntries {
		return nil, fmt.Errorf("%w: LISTED with %d entries, limit %d", ErrTooMany, len(m.Entries), MaxListEntries)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Entries)))
	for _, e := range m.Entries {
		dst = append(dst, e.ID[:]...)
		dst = binary.BigEndian.AppendUint64(dst, e.StoredAt)
	}
	return append(dst, boolByte(m.More)), nil
}

func (m Delete) appendBody(dst []byte) ([]byte, error) {
	dst = append(dst, m.ID[:]...)
	return append(dst, m.Preimage[:]...), nil
}

func (m DeleteMany) appendBody(dst []byte) ([]byte, error) {
	if len(m.Deletes) == 0 || len(m.Deletes) > MaxDeleteMany {
		return nil, fmt.Errorf("%w: DELETE_MANY of %d IDs, want 1 to %d", ErrCount, len(m.Deletes), MaxDeleteMany)
	}
	for i := 1; i < len(m.Deletes); i++ {
		if !block.Less(m.Deletes[i-1].ID, m.Deletes[i].ID) {
			return nil, fmt.Errorf("%w: DELETE_MANY ID %d", ErrIDOrder, i)
		}
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Deletes)))
	for _, x := range m.Deletes {
		dst = append(dst, x.ID[:]...)
		dst = append(dst, x.Preimage[:]...)
	}
	return dst, nil
}

func (m Deleted) appendBody(dst []byte) ([]byte, error) {
	if len(m.Statuses) == 0 || len(m.Statuses) > MaxDeleteMany {
		return nil, fmt.Errorf("%w: DELETED with %d statuses, want 1 to %d", ErrCount, len(m.Statuses), MaxDeleteMany)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Statuses)))
	for _, st := range m.Statuses {
		if st > StatusForbidden {
			return nil, fmt.Errorf("%w: %d", ErrStatus, st)
		}
		dst = append(dst, byte(st))
	}
	return dst, nil
}

func (m StoreMany) appendBody(dst []byte) ([]byte, error) {
	if len(m.Blocks) == 0 || len(m.Blocks) > MaxStoreMany {
		return nil, fmt.Errorf("%w: STORE_MANY of %d blocks, want 1 to %d", ErrCount, len(m.Blocks), MaxStoreMany)
	}
	if m.Lifetime == 0 || m.Lifetime > MaxLifetimeSeconds {
		return nil, fmt.Errorf("%w: %d s, want 1 to %d", ErrLifetime, m.Lifetime, MaxLifetimeSeconds)
	}
	dst = binary.BigEndian.AppendUint32(dst, m.Lifetime)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Blocks)))
	for _, b := range m.Blocks {
		if len(b) == 0 || len(b) > block.MaxBlockSize {
			return nil, fmt.Errorf("%w: %d bytes, want 1 to %d", ErrBlockSize, len(b), block.MaxBlockSize)
		}
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(b)))
		dst = append(dst, b...)
	}
	return dst, nil
}

func (m StoredMany) appendBody(dst []byte) ([]byte, error) {
	if len(m.Closer) == 0 || len(m.Closer) > MaxStoreMany {
		return nil, fmt.Errorf("%w: STORED_MANY with %d entries, want 1 to %d", ErrCount, len(m.Closer), MaxStoreMany)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Closer)))
	for _, c := range m.Closer {
		if c > MaxNodes && c != StoreRefused {
			return nil, fmt.Errorf("%w: STORED_MANY entry %d", ErrStatus, c)
		}
		dst = append(dst, c)
	}
	return dst, nil
}

func (e *Error) appendBody(dst []byte) ([]byte, error) {
	if len(e.Text) > MaxErrorText {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTextTooLong, len(e.Text), MaxErrorText)
	}
	if !utf8.ValidString(e.Text) {
		return nil, ErrTextUTF8
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(e.Code))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(e.Text)))
	return append(dst, e.Text...), nil
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// Address families of the addr layout (docs/PROTOCOL.md section 7).
const (
	familyIPv4 = 4
	familyIPv6 = 6
)

// appendAddr appends family u8 || ip || port u16. An IPv4 address is
// written as family 4; every other address (IPv4-mapped IPv6 included) as
// family 6, so decoding and re-encoding give the same bytes.
func appendAddr(dst []byte, a netip.AddrPort) ([]byte, error) {
	ip := a.Addr()
	switch {
	case ip.Is4():
		b := ip.As4()
		dst = append(append(dst, familyIPv4), b[:]...)
	case ip.Is6():
		if ip.Zone() != "" {
			return nil, fmt.Errorf("kademlia: address %v has a zone, which the wire cannot carry", a)
		}
		b := ip.As16()
		dst = append(append(dst, familyIPv6), b[:]...)
	default:
		return nil, fmt.Errorf("kademlia: cannot encode invalid address %v", a)
	}
	return binary.BigEndian.AppendUint16(dst, a.Port()), nil
}

// reader walks a message, checking every length before it parses a byte.
// The first failure sticks; later reads return zero values.
type reader struct {
	b    []byte
	what string // the message being decoded, for error detail
	err  error
}

func (r *reader) take(n int, field string) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.err = fmt.Errorf("%w: %s needs %d bytes for %s, %d left", ErrTruncated, r.what, n, field, len(r.b))
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8(field string) uint8 {
	if v := r.take(1, field); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16(field string) uint16 {
	if v := r.take(2, field); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *reader) u32(field string) uint32 {
	if v := r.take(4, field); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64(field string) uint64 {
	if v := r.take(8, field); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (r *reader) id(field string) block.ID {
	var id block.ID
	copy(id[:], r.take(block.IDSize, field))
	return id
}

func (r *reader) flag(field string) bool {
	v := r.u8(field)
	if r.err == nil && v > 1 {
		r.err = fmt.Errorf("%w: %s %s is %d", ErrFlag, r.what, field, v)
	}
	return v == 1
}

// addr reads the addr layout; field names it in errors, which are the
// only place the name is built (no allocation on the good path).
func (r *reader) addr(field string) netip.AddrPort {
	family := r.u8("addr family")
	var ip netip.Addr
	switch {
	case r.err != nil:
		return netip.AddrPort{}
	case family == familyIPv4:
		if v := r.take(4, field); v != nil {
			ip = netip.AddrFrom4([4]byte(v))
		}
	case family == familyIPv6:
		if v := r.take(16, field); v != nil {
			ip = netip.AddrFrom16([16]byte(v))
		}
	default:
		r.err = fmt.Errorf("%w: %s %s has family %d, want 4 or 6", ErrAddrFamily, r.what, field, family)
		return netip.AddrPort{}
	}
	port := r.u16("addr port")
	if r.err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ip, port)
}

// lifetimeBlock takes lifetime u32 and the rest as a block, checking both.
func (r *reader) lifetimeBlock() (uint32, []byte) {
	lifetime := r.u32("lifetime")
	if r.err != nil {
		return 0, nil
	}
	if lifetime == 0 || lifetime > MaxLifetimeSeconds {
		r.err = fmt.Errorf("%w: %s asks %d s, want 1 to %d", ErrLifetime, r.what, lifetime, MaxLifetimeSeconds)
		return 0, nil
	}
	if len(r.b) == 0 || len(r.b) > block.MaxBlockSize {
		r.err = fmt.Errorf("%w: %s carries %d bytes, want 1 to %d", ErrBlockSize, r.what, len(r.b), block.MaxBlockSize)
		return 0, nil
	}
	b := r.b
	r.b = nil
	return lifetime, b
}

// done fails on trailing bytes and returns the sticky error.
func (r *reader) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d after %s", ErrTrailing, len(r.b), r.what)
	}
	return r.err
}

// Decode parses one message. A block in the result aliases b. Decoding is strict: every length is checked before
// it is used, flags must be 0 or 1, and trailing bytes are an error, so
// Encode of a decoded message gives b back.
func Decode(b []byte) (Message, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty message", ErrTruncated)
	}
	t := MsgType(b[0])
	r := &reader{b: b[1:], what: t.String()}
	var m Message
	switch t {
	case TypePing:
		m = Ping{}
	case TypeOK:
		m = OK{}
	case TypePong:
		m = Pong{Observed: r.addr("observed addr")}
	case TypeFindNode:
		m = FindNode{Target: r.id("target")}
	case TypeFindBlock:
		m = FindBlock{ID: r.id("id")}
	case TypeNodes:
		m = decodeNodes(r)
	case TypeStored:
		m = Stored(decodeNodes(r))
	case TypeDeleteMany:
		m = decodeDeleteMany(r)
	case TypeDeleted:
		m = decodeDeleted(r)
	case TypeStoreMany:
		m = decodeStoreMany(r)
	case TypeStoredMany:
		m = decodeStoredMany(r)
	case TypeBlock:
		lifetime, blk := r.lifetimeBlock()
		m = BlockReply{Lifetime: lifetime, Block: blk}
	case TypeStore:
		lifetime, blk := r.lifetimeBlock()
		m = Store{Lifetime: lifetime, Block: blk}
	case TypeList:
		m = decodeList(r)
	case TypeListed:
		m = decodeListed(r)
	case TypeDelete:
		d := Delete{ID: r.id("id")}
		copy(d.Preimage[:], r.take(32, "preimage"))
		m = d
	case TypeError:
		m = decodeError(r)
	default:
		return nil, fmt.Errorf("%w: %#02x", ErrUnknownType, b[0])
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return m, nil
}

func decodeNodes(r *reader) Nodes {
	n := int(r.u8("count"))
	if r.err == nil && n > MaxNodes {
		r.err = fmt.Errorf("%w: NODES count %d, limit %d", ErrTooMany, n, MaxNodes)
	}
	if r.err != nil {
		return Nodes{}
	}
	m := Nodes{Contacts: make([]transport.Contact, 0, n)}
	for i := 0; i < n && r.err == nil; i++ {
		c := transport.Contact{ID: r.id("contact id")}
		c.Addr = r.addr("contact addr")
		m.Contacts = append(m.Contacts, c)
	}
	return m
}

func decodeDeleteMany(r *reader) DeleteMany {
	const entrySize = block.IDSize + 32
	n := int(r.u16("count"))
	if r.err == nil && (n == 0 || n > MaxDeleteMany) {
		r.err = fmt.Errorf("%w: DELETE_MANY count %d, want 1 to %d", ErrCount, n, MaxDeleteMany)
	}
	if r.err == nil && len(r.b) < n*entrySize {
		r.err = fmt.Errorf("%w: DELETE_MANY count %d needs %d bytes, %d left", ErrTruncated, n, n*entrySize, len(r.b))
	}
	if r.err != nil {
		return DeleteMany{}
	}
	m := DeleteMany{Deletes: make([]Delete, n)}
	for i := range m.Deletes {
		m.Deletes[i].ID = r.id("id")
		copy(m.Deletes[i].Preimage[:], r.take(32, "preimage"))
		if i > 0 && r.err == nil && !block.Less(m.Deletes[i-1].ID, m.Deletes[i].ID) {
			r.err = fmt.Errorf("%w: DELETE_MANY ID %d", ErrIDOrder, i)
		}
	}
	return m
}

func decodeDeleted(r *reader) Deleted {
	n := int(r.u16("count"))
	if r.err == nil && (n == 0 || n > MaxDeleteMany) {
		r.err = fmt.Errorf("%w: DELETED count %d, want 1 to %d", ErrCount, n, MaxDeleteMany)
	}
	b := r.take(n, "statuses")
	if r.err != nil {
		return Deleted{}
	}
	m := Deleted{Statuses: make([]DeleteStatus, n)}
	for i, x := range b {
		if DeleteStatus(x) > StatusForbidden {
			r.err = fmt.Errorf("%w: %d", ErrStatus, x)
			return Deleted{}
		}
		m.Statuses[i] = DeleteStatus(x)
	}
	return m
}

func decodeStoreMany(r *reader) StoreMany {
	m := StoreMany{Lifetime: r.u32("lifetime")}
	n := int(r.u16("count"))
	switch {
	case r.err != nil:
		return StoreMany{}
	case m.Lifetime == 0 || m.Lifetime > MaxLifetimeSeconds:
		r.err = fmt.Errorf("%w: STORE_MANY asks %d s, want 1 to %d", ErrLifetime, m.Lifetime, MaxLifetimeSeconds)
		return StoreMany{}
	case n == 0 || n > MaxStoreMany:
		r.err = fmt.Errorf("%w: STORE_MANY count %d, want 1 to %d", ErrCount, n, MaxStoreMany)
		return StoreMany{}
	}
	m.Blocks = make([][]byte, 0, min(n, len(r.b)/5)) // each takes 5 bytes at least
	for i := 0; i < n && r.err == nil; i++ {
		size := r.u32("block length")
		if r.err == nil && (size == 0 || size > block.MaxBlockSize) {
			r.err = fmt.Errorf("%w: STORE_MANY block %d of %d bytes, want 1 to %d", ErrBlockSize, i, size, block.MaxBlockSize)
		}
		if b := r.take(int(size), "block"); r.err == nil {
			m.Blocks = append(m.Blocks, b)
		}
	}
	if r.err != nil {
		return StoreMany{}
	}
	return m
}

func decodeStoredMany(r *reader) StoredMany {
	n := int(r.u16("count"))
	if r.err == nil && (n == 0 || n > MaxStoreMany) {
		r.err = fmt.Errorf("%w: STORED_MANY count %d, want 1 to %d", ErrCount, n, MaxStoreMany)
	}
	b := r.take(n, "entries")
	if r.err != nil {
		return StoredMany{}
	}
	for _, c := range b {
		if c > MaxNodes && c != StoreRefused {
			r.err = fmt.Errorf("%w: STORED_MANY entry %d, want 0 to %d or %d", ErrStatus, c, MaxNodes, StoreRefused)
			return StoredMany{}
		}
	}
	return StoredMany{Closer: bytes.Clone(b)}
}

func decodeList(r *reader) List {
	m := List{Target: r.id("target"), Bits: r.u8("bits"), Since: r.u64("since")}
	m.HasAfter = r.flag("has_after")
	m.After = r.id("after")
	m.Limit = r.u16("limit")
	if r.err == nil && !m.HasAfter && !m.After.IsZero() {
		r.err = fmt.Errorf("%w: LIST", ErrAfterNonzero)
	}
	return m
}

func decodeListed(r *reader) Listed {
	n := int(r.u16("count"))
	if r.err == nil && n > MaxListEntries {
		r.err = fmt.Errorf("%w: LISTED count %d, limit %d", ErrTooMany, n, MaxListEntries)
	}
	// The length check comes before the allocation, so a lying count
	// cannot make us allocate.
	const entrySize = block.IDSize + 8
	if r.err == nil && len(r.b) < n*entrySize {
		r.err = fmt.Errorf("%w: LISTED count %d needs %d bytes, %d left", ErrTruncated, n, n*entrySize, len(r.b))
	}
	if r.err != nil {
		return Listed{}
	}
	m := Listed{Entries: make([]ListedEntry, n)}
	for i := range m.Entries {
		m.Entries[i] = ListedEntry{ID: r.id("entry id"), StoredAt: r.u64("stored_at")}
	}
	m.More = r.flag("more")
	return m
}

func decodeError(r *reader) *Error {
	e := &Error{Code: ErrorCode(r.u16("code"))}
	n := int(r.u16("msg_len"))
	if r.err == nil && n > MaxErrorText {
		r.err = fmt.Errorf("%w: %d bytes, limit %d", ErrTextTooLong, n, MaxErrorText)
	}
	text := r.take(n, "msg")
	if r.err == nil && !utf8.Valid(text) {
		r.err = ErrTextUTF8
	}
	e.Text = string(text)
	return e
}
