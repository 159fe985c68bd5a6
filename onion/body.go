package onion

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/flowmail/flowmail/block"
)

// RequestKind names what an exit does (section 14.6).
type RequestKind uint8

// Request kinds.
const (
	KindPut  RequestKind = 1 // store a block (or one part of it) at the K closest nodes
	KindList RequestKind = 2 // list index blocks under a prefix
	KindGet  RequestKind = 3 // fetch a block, one range per reply block
	KindPing RequestKind = 4 // answer empty through every reply block (path check, loop cover)
	KindDrop RequestKind = 5 // discard (cover traffic)
	// KindRecord looks a record slot up at the K closest nodes and
	// answers every distinct valid version (section 15.4), so the client
	// folds them as if it had asked the storers itself.
	KindRecord RequestKind = 6
	// KindDelete deletes a block at the K closest nodes with its
	// deletion preimage (section 8's DELETE).
	KindDelete RequestKind = 7
)

func (k RequestKind) String() string {
	switch k {
	case KindPut:
		return "put"
	case KindList:
		return "list"
	case KindGet:
		return "get"
	case KindPing:
		return "ping"
	case KindDrop:
		return "drop"
	case KindRecord:
		return "record"
	case KindDelete:
		return "delete"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Sizes of the bodies.
const (
	// SURBSize is a reply block inside an exit body:
	// first_hop [32] || addr [19] || header [3648] || key [32].
	SURBSize = block.IDSize + addrSize + HeaderSize + 32
	// MaxSURBs is how many reply blocks fit in one exit body beside a
	// request without a chunk.
	MaxSURBs = (BodySize - 2 - listFieldsSize) / SURBSize
	// MaxListReply is how many LIST entries one reply carries.
	MaxListReply = (BodySize - 2 - 2 - 1) / listEntrySize
	// MaxGetChunk is the most block bytes one GET reply carries.
	MaxGetChunk = BodySize - 2 - 12
	// MaxRecordReply is how many records of MaxRecordSize one RECORD
	// reply carries: count u8, then (len u16 || record) each, then more.
	MaxRecordReply = (BodySize - 2 - 1 - 1) / (2 + block.MaxRecordSize)

	putFieldsSize    = 4 + block.IDSize + 4 + 4 + 4
	listFieldsSize   = block.IDSize + 1 + 8 + 1 + block.IDSize + 2
	getFieldsSize    = block.IDSize + 4
	recordFieldsSize = block.IDSize
	deleteFieldsSize = block.IDSize + 32
	listEntrySize    = block.IDSize + 8
)

// MaxPutChunk is the most block bytes a PUT carries beside surbs reply
// blocks.
func MaxPutChunk(surbs int) int { return BodySize - 2 - surbs*SURBSize - putFieldsSize }

// SURB is a single-use reply block: a header built by a client for a
// reply path, the relay the reply goes to first, and the key the replier
// seals the reply body with.
type SURB struct {
	FirstHop block.ID
	Addr     netip.AddrPort
	Header   [HeaderSize]byte
	Key      [32]byte
}

func (s *SURB) append(dst []byte) ([]byte, error) {
	dst = append(dst, s.FirstHop[:]...)
	var a [addrSize]byte
	if err := putAddr(a[:], s.Addr); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSURB, err)
	}
	if !s.Addr.IsValid() {
		return nil, fmt.Errorf("%w: no address for the first hop", ErrSURB)
	}
	dst = append(dst, a[:]...)
	dst = append(dst, s.Header[:]...)
	return append(dst, s.Key[:]...), nil
}

func parseSURB(b []byte) (SURB, error) {
	var s SURB
	copy(s.FirstHop[:], b[:32])
	a, err := parseAddr(b[32 : 32+addrSize])
	if err != nil || !a.IsValid() {
		return s, fmt.Errorf("%w: first hop address", ErrSURB)
	}
	if s.FirstHop == (block.ID{}) {
		return s, fmt.Errorf("%w: zero first hop", ErrSURB)
	}
	s.Addr = a
	copy(s.Header[:], b[32+addrSize:32+addrSize+HeaderSize])
	copy(s.Key[:], b[32+addrSize+HeaderSize:])
	return s, nil
}

// Request is what an exit executes.
type Request interface {
	Kind() RequestKind
	appendFields(dst []byte) ([]byte, error)
}

// Put stores a block at the K closest nodes to its ID. A block larger
// than one body goes in parts with the same ID and Total; the exit
// assembles them and stores once every byte has come and the ID checks.
type Put struct {
	Lifetime uint32 // seconds, 1 to MaxLifetime
	ID       block.ID
	Total    uint32 // length of the whole block
	Offset   uint32 // where Chunk goes
	Chunk    []byte
}

// List asks for the index blocks under a prefix, as section 8's LIST.
type List struct {
	Target   block.ID
	Bits     uint8 // 0 to 255
	Since    uint64
	HasAfter bool
	After    block.ID
	Limit    uint16
}

// Get fetches a block from Offset; each reply block carries the next
// range.
type Get struct {
	ID     block.ID
	Offset uint32
}

// Ping is answered empty through every reply block.
type Ping struct{}

// Record asks for the versions of the record at Slot that the K nodes
// closest to it hold.
type Record struct {
	Slot block.ID
}

// Delete asks the K nodes closest to ID to drop it, proving the right
// with the preimage of its deletion hash.
type Delete struct {
	ID       block.ID
	Preimage [32]byte
}

// Drop is discarded by the exit: cover traffic.
type Drop struct{}

func (Put) Kind() RequestKind    { return KindPut }
func (List) Kind() RequestKind   { return KindList }
func (Get) Kind() RequestKind    { return KindGet }
func (Ping) Kind() RequestKind   { return KindPing }
func (Drop) Kind() RequestKind   { return KindDrop }
func (Record) Kind() RequestKind { return KindRecord }
func (Delete) Kind() RequestKind { return KindDelete }

func (p Put) appendFields(dst []byte) ([]byte, error) {
	if err := p.check(uint32(len(p.Chunk))); err != nil {
		return nil, err
	}
	dst = binary.BigEndian.AppendUint32(dst, p.Lifetime)
	dst = append(dst, p.ID[:]...)
	dst = binary.BigEndian.AppendUint32(dst, p.Total)
	dst = binary.BigEndian.AppendUint32(dst, p.Offset)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(p.Chunk)))
	return append(dst, p.Chunk...), nil
}

func (p Put) check(chunk uint32) error {
	switch {
	case p.Lifetime < 1 || time.Duration(p.Lifetime)*time.Second > block.MaxLifetime:
		return fmt.Errorf("%w: put lifetime %d", ErrExitBody, p.Lifetime)
	case p.Total < 1 || p.Total > block.MaxBlockSize:
		return fmt.Errorf("%w: put total %d", ErrExitBody, p.Total)
	case chunk < 1 || uint64(p.Offset)+uint64(chunk) > uint64(p.Total):
		return fmt.Errorf("%w: put chunk %d at %d of %d", ErrExitBody, chunk, p.Offset, p.Total)
	}
	return nil
}

func (l List) appendFields(dst []byte) ([]byte, error) {
	if !l.HasAfter && l.After != (block.ID{}) {
		return nil, fmt.Errorf("%w: list after without has_after", ErrExitBody)
	}
	if l.Bits == 255 {
		return nil, fmt.Errorf("%w: list of 255 bits", ErrExitBody)
	}
	dst = append(dst, l.Target[:]...)
	dst = append(dst, l.Bits)
	dst = binary.BigEndian.AppendUint64(dst, l.Since)
	dst = append(dst, boolByte(l.HasAfter))
	dst = append(dst, l.After[:]...)
	return binary.BigEndian.AppendUint16(dst, l.Limit), nil
}

func (g Get) appendFields(dst []byte) ([]byte, error) {
	if g.Offset >= block.MaxBlockSize {
		return nil, fmt.Errorf("%w: get offset %d", ErrExitBody, g.Offset)
	}
	dst = append(dst, g.ID[:]...)
	return binary.BigEndian.AppendUint32(dst, g.Offset), nil
}

func (Ping) appendFields(dst []byte) ([]byte, error) { return dst, nil }
func (Drop) appendFields(dst []byte) ([]byte, error) { return dst, nil }

func (r Record) appendFields(dst []byte) ([]byte, error) { return append(dst, r.Slot[:]...), nil }

func (d Delete) appendFields(dst []byte) ([]byte, error) {
	dst = append(dst, d.ID[:]...)
	return append(dst, d.Preimage[:]...), nil
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// ExitBody is the plaintext an exit opens: a request and the reply
// blocks for its answers.
type ExitBody struct {
	Request Request
	SURBs   []SURB
}

// Encode returns the BodySize bytes of the body: kind u8 || surb_count u8
// || surbs || fields || zero padding.
func (e *ExitBody) Encode() ([]byte, error) {
	if e.Request == nil {
		return nil, fmt.Errorf("%w: no request", ErrExitBody)
	}
	if len(e.SURBs) > MaxSURBs {
		return nil, fmt.Errorf("%w: %d reply blocks", ErrExitBody, len(e.SURBs))
	}
	if e.Request.Kind() == KindDrop && len(e.SURBs) != 0 {
		return nil, fmt.Errorf("%w: drop with reply blocks", ErrExitBody)
	}
	b := make([]byte, 0, BodySize)
	b = append(b, byte(e.Request.Kind()), byte(len(e.SURBs)))
	var err error
	for i := range e.SURBs {
		if b, err = e.SURBs[i].append(b); err != nil {
			return nil, err
		}
	}
	if b, err = e.Request.appendFields(b); err != nil {
		return nil, err
	}
	if len(b) > BodySize {
		return nil, fmt.Errorf("%w: %d bytes, a body holds %d", ErrExitBody, len(b), BodySize)
	}
	return b[:BodySize], nil
}

// ParseExitBody decodes an exit body: lengths are checked before each
// field, the padding must be zero.
func ParseExitBody(b []byte) (*ExitBody, error) {
	if len(b) != BodySize {
		return nil, fmt.Errorf("%w: %d bytes", ErrExitBody, len(b))
	}
	kind, n := RequestKind(b[0]), int(b[1])
	if n > MaxSURBs {
		return nil, fmt.Errorf("%w: %d reply blocks", ErrExitBody, n)
	}
	e := &ExitBody{}
	off := 2
	for range n {
		s, err := parseSURB(b[off : off+SURBSize])
		if err != nil {
			return nil, err
		}
		e.SURBs = append(e.SURBs, s)
		off += SURBSize
	}
	rest := b[off:]
	var used int
	switch kind {
	case KindPut:
		if len(rest) < putFieldsSize {
			return nil, fmt.Errorf("%w: put truncated", ErrExitBody)
		}
		p := Put{
			Lifetime: binary.BigEndian.Uint32(rest[0:]),
			ID:       block.ID(rest[4:36]),
			Total:    binary.BigEndian.Uint32(rest[36:]),
			Offset:   binary.BigEndian.Uint32(rest[40:]),
		}
		chunk := binary.BigEndian.Uint32(rest[44:])
		if err := p.check(chunk); err != nil {
			return nil, err
		}
		if uint64(chunk) > uint64(len(rest)-putFieldsSize) {
			return nil, fmt.Errorf("%w: put chunk of %d bytes past the body", ErrExitBody, chunk)
		}
		p.Chunk = append([]byte(nil), rest[putFieldsSize:putFieldsSize+int(chunk)]...)
		e.Request, used = p, putFieldsSize+int(chunk)
	case KindList:
		if len(rest) < listFieldsSize {
			return nil, fmt.Errorf("%w: list truncated", ErrExitBody)
		}
		l := List{
			Target: block.ID(rest[0:32]),
			Bits:   rest[32],
			Since:  binary.BigEndian.Uint64(rest[33:]),
			After:  block.ID(rest[42:74]),
			Limit:  binary.BigEndian.Uint16(rest[74:]),
		}
		switch rest[41] {
		case 0:
			if l.After != (block.ID{}) {
				return nil, fmt.Errorf("%w: list after without has_after", ErrExitBody)
			}
		case 1:
			l.HasAfter = true
		default:
			return nil, fmt.Errorf("%w: has_after %d", ErrExitBody, rest[41])
		}
		if l.Bits == 255 {
			return nil, fmt.Errorf("%w: list of 255 bits", ErrExitBody)
		}
		e.Request, used = l, listFieldsSize
	case KindGet:
		if len(rest) < getFieldsSize {
			return nil, fmt.Errorf("%w: get truncated", ErrExitBody)
		}
		g := Get{ID: block.ID(rest[0:32]), Offset: binary.BigEndian.Uint32(rest[32:])}
		if g.Offset >= block.MaxBlockSize {
			return nil, fmt.Errorf("%w: get offset %d", ErrExitBody, g.Offset)
		}
		e.Request, used = g, getFieldsSize
	case KindPing:
		e.Request = Ping{}
	case KindRecord:
		if len(rest) < recordFieldsSize {
			return nil, fmt.Errorf("%w: record truncated", ErrExitBody)
		}
		e.Request, used = Record{Slot: block.ID(rest[0:32])}, recordFieldsSize
	case KindDelete:
		if len(rest) < deleteFieldsSize {
			return nil, fmt.Errorf("%w: delete truncated", ErrExitBody)
		}
		e.Request, used = Delete{ID: block.ID(rest[0:32]), Preimage: [32]byte(rest[32:64])}, deleteFieldsSize
	case KindDrop:
		if n != 0 {
			return nil, fmt.Errorf("%w: drop with reply blocks", ErrExitBody)
		}
		e.Request = Drop{}
	default:
		return nil, fmt.Errorf("%w: kind %d", ErrExitBody, b[0])
	}
	if !allZero(rest[used:]) {
		return nil, fmt.Errorf("%w: padding not zero", ErrExitBody)
	}
	return e, nil
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// Reply is what comes back through a reply block.
type Reply interface {
	Kind() RequestKind
	appendFields(dst []byte) ([]byte, error)
}

// ErrorReply says the exit could not do what was asked: Code is a
// section 8 error code (1 to 255).
type ErrorReply struct {
	Request RequestKind
	Code    uint8
}

// PutReply says how many of the K closest nodes took the block (0 while
// parts are missing: a part's reply only acknowledges it).
type PutReply struct{ Stored uint8 }

// ListEntry is one listed index block.
type ListEntry struct {
	ID       block.ID
	StoredAt uint64
}

// ListReply carries up to MaxListReply entries in ascending ID order.
type ListReply struct {
	Entries []ListEntry
	More    bool
}

// GetReply carries one range of a block.
type GetReply struct {
	Total  uint32
	Offset uint32
	Chunk  []byte
}

// PingReply is empty.
type PingReply struct{}

// RecordReply carries distinct versions of a record, each 1 to
// MaxRecordSize bytes, at most MaxRecordReply of them; More says the
// exit had more than its reply blocks carried. The exit vouches for
// nothing: the client verifies and folds them (section 15.5).
type RecordReply struct {
	Records [][]byte
	More    bool
}

// DeleteReply says how many of the K closest nodes dropped the block.
type DeleteReply struct{ Deleted uint8 }

func (r ErrorReply) Kind() RequestKind { return r.Request }
func (PutReply) Kind() RequestKind     { return KindPut }
func (ListReply) Kind() RequestKind    { return KindList }
func (GetReply) Kind() RequestKind     { return KindGet }
func (PingReply) Kind() RequestKind    { return KindPing }
func (RecordReply) Kind() RequestKind  { return KindRecord }
func (DeleteReply) Kind() RequestKind  { return KindDelete }

func (ErrorReply) appendFields(dst []byte) ([]byte, error)    { return dst, nil }
func (r PutReply) appendFields(dst []byte) ([]byte, error)    { return append(dst, r.Stored), nil }
func (PingReply) appendFields(dst []byte) ([]byte, error)     { return dst, nil }
func (r DeleteReply) appendFields(dst []byte) ([]byte, error) { return append(dst, r.Deleted), nil }

func (r RecordReply) appendFields(dst []byte) ([]byte, error) {
	if len(r.Records) > MaxRecordReply {
		return nil, fmt.Errorf("%w: %d records", ErrReplyBody, len(r.Records))
	}
	dst = append(dst, byte(len(r.Records)))
	for _, rec := range r.Records {
		if len(rec) < 1 || len(rec) > block.MaxRecordSize {
			return nil, fmt.Errorf("%w: a record of %d bytes", ErrReplyBody, len(rec))
		}
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(rec)))
		dst = append(dst, rec...)
	}
	return append(dst, boolByte(r.More)), nil
}

func (r ListReply) appendFields(dst []byte) ([]byte, error) {
	if len(r.Entries) > MaxListReply {
		return nil, fmt.Errorf("%w: %d list entries", ErrReplyBody, len(r.Entries))
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(r.Entries)))
	for _, e := range r.Entries {
		dst = append(dst, e.ID[:]...)
		dst = binary.BigEndian.AppendUint64(dst, e.StoredAt)
	}
	return append(dst, boolByte(r.More)), nil
}

func (r GetReply) appendFields(dst []byte) ([]byte, error) {
	if err := r.check(uint32(len(r.Chunk))); err != nil {
		return nil, err
	}
	dst = binary.BigEndian.AppendUint32(dst, r.Total)
	dst = binary.BigEndian.AppendUint32(dst, r.Offset)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(r.Chunk)))
	return append(dst, r.Chunk...), nil
}

func (r GetReply) check(chunk uint32) error {
	if r.Total < 1 || r.Total > block.MaxBlockSize || chunk < 1 || chunk > MaxGetChunk ||
		uint64(r.Offset)+uint64(chunk) > uint64(r.Total) {
		return fmt.Errorf("%w: get chunk %d at %d of %d", ErrReplyBody, chunk, r.Offset, r.Total)
	}
	return nil
}

// EncodeReply returns the BodySize bytes of a reply body:
// kind u8 || status u8 || fields || zero padding.
func EncodeReply(r Reply) ([]byte, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: no reply", ErrReplyBody)
	}
	status := byte(0)
	if e, ok := r.(ErrorReply); ok {
		if e.Code == 0 {
			return nil, fmt.Errorf("%w: error code 0", ErrReplyBody)
		}
		status = e.Code
	}
	if !answered(r.Kind()) {
		return nil, fmt.Errorf("%w: reply to %v", ErrReplyBody, r.Kind())
	}
	b := make([]byte, 0, BodySize)
	b = append(b, byte(r.Kind()), status)
	b, err := r.appendFields(b)
	if err != nil {
		return nil, err
	}
	if len(b) > BodySize {
		return nil, fmt.Errorf("%w: %d bytes", ErrReplyBody, len(b))
	}
	return b[:BodySize], nil
}

// answered reports whether requests of kind k get answers: every kind
// but DROP.
func answered(k RequestKind) bool {
	return k >= KindPut && k <= KindDelete && k != KindDrop
}

// ParseReply decodes a reply body.
func ParseReply(b []byte) (Reply, error) {
	if len(b) != BodySize {
		return nil, fmt.Errorf("%w: %d bytes", ErrReplyBody, len(b))
	}
	kind, status, rest := RequestKind(b[0]), b[1], b[2:]
	if !answered(kind) {
		return nil, fmt.Errorf("%w: kind %d", ErrReplyBody, b[0])
	}
	var r Reply
	used := 0
	switch {
	case status != 0:
		r = ErrorReply{Request: kind, Code: status}
	case kind == KindPut:
		r, used = PutReply{Stored: rest[0]}, 1
	case kind == KindList:
		n := int(binary.BigEndian.Uint16(rest))
		if n > MaxListReply {
			return nil, fmt.Errorf("%w: %d list entries", ErrReplyBody, n)
		}
		lr := ListReply{Entries: make([]ListEntry, n)}
		off := 2
		for i := range lr.Entries {
			lr.Entries[i] = ListEntry{ID: block.ID(rest[off : off+32]), StoredAt: binary.BigEndian.Uint64(rest[off+32:])}
			off += listEntrySize
		}
		switch rest[off] {
		case 0:
		case 1:
			lr.More = true
		default:
			return nil, fmt.Errorf("%w: more %d", ErrReplyBody, rest[off])
		}
		r, used = lr, off+1
	case kind == KindGet:
		g := GetReply{Total: binary.BigEndian.Uint32(rest), Offset: binary.BigEndian.Uint32(rest[4:])}
		chunk := binary.BigEndian.Uint32(rest[8:])
		if err := g.check(chunk); err != nil {
			return nil, err
		}
		g.Chunk = append([]byte(nil), rest[12:12+chunk]...)
		r, used = g, 12+int(chunk)
	case kind == KindPing:
		r = PingReply{}
	case kind == KindDelete:
		r, used = DeleteReply{Deleted: rest[0]}, 1
	case kind == KindRecord:
		n := int(rest[0])
		if n > MaxRecordReply {
			return nil, fmt.Errorf("%w: %d records", ErrReplyBody, n)
		}
		rr := RecordReply{Records: make([][]byte, n)}
		off := 1
		for i := range rr.Records {
			// n ≤ MaxRecordReply records of at most MaxRecordSize
			// fit in the body with their lengths: off stays inside.
			l := int(binary.BigEndian.Uint16(rest[off:]))
			if l < 1 || l > block.MaxRecordSize {
				return nil, fmt.Errorf("%w: a record of %d bytes", ErrReplyBody, l)
			}
			rr.Records[i] = append([]byte(nil), rest[off+2:off+2+l]...)
			off += 2 + l
		}
		switch rest[off] {
		case 0:
		case 1:
			rr.More = true
		default:
			return nil, fmt.Errorf("%w: more %d", ErrReplyBody, rest[off])
		}
		r, used = rr, off+1
	}
	if !allZero(rest[used:]) {
		return nil, fmt.Errorf("%w: padding not zero", ErrReplyBody)
	}
	return r, nil
}
