package server

import (
	"encoding/binary"

	"github.com/flowmail/flowmail/block"
)

// Message types of held mail (docs/PROTOCOL.md 21.5). Numbers are never
// reused.
const (
	TypeHold        MsgType = 0x47
	TypeHoldStatus  MsgType = 0x48
	TypeHeldList    MsgType = 0x49
	TypeHeldIDs     MsgType = 0x4a
	TypeHeldGet     MsgType = 0x4b
	TypeHeldBlock   MsgType = 0x4c
	TypeHeldConfirm MsgType = 0x4d
)

// Sizes of the held-mail messages (section 21.5).
const (
	// MaxHeldIDs is the most IDs one HELD_IDS or HELD_CONFIRM carries.
	MaxHeldIDs = 1024
	// MaxStatusText bounds HOLD_STATUS's text.
	MaxStatusText = 200
)

// HoldState says whether a server collects an owner's mail, and if not,
// why (HOLD_STATUS, section 21.5).
type HoldState uint8

const (
	HoldCollecting   HoldState = 0 // a valid delegation names this server
	HoldNoDelegation HoldState = 1 // none found at the owner's slot
	HoldExpired      HoldState = 2 // outside its dates
	HoldRevoked      HoldState = 3 // the delegation or the identity ended
	HoldNotNamed     HoldState = 4 // valid, but this server is not among its delegates
	HoldWrongKey     HoldState = 5 // not signed by the owner's current key
	HoldQuotaFull    HoldState = 6 // delegated, but the owner's quota is used up
	HoldUnknown      HoldState = 7 // the key log or the delegation could not be read now
	lastHoldState              = HoldUnknown
)

func (s HoldState) String() string {
	switch s {
	case HoldCollecting:
		return "collecting"
	case HoldNoDelegation:
		return "no delegation"
	case HoldExpired:
		return "delegation expired"
	case HoldRevoked:
		return "revoked"
	case HoldNotNamed:
		return "not named by the delegation"
	case HoldWrongKey:
		return "delegation not signed by the current key"
	case HoldQuotaFull:
		return "quota full"
	case HoldUnknown:
		return "delegation not readable now"
	}
	return "state(?)"
}

// Hold asks a server to collect Owner's mail (or to say why it will not).
type Hold struct{ Owner block.ID }

// HoldStatus answers Hold: the state, the delegation's end (Unix
// seconds, 0 when none), what is held and the quota, and a text.
type HoldStatus struct {
	State      HoldState
	NotAfter   uint64
	Mails      uint32
	Bytes      uint64
	QuotaBytes uint64
	Text       string // printable ASCII, at most MaxStatusText bytes
}

// HeldList asks for the index IDs held for Owner, after After in
// ascending order (zero: from the first).
type HeldList struct {
	Owner block.ID
	After block.ID
}

// HeldIDs answers HeldList: up to MaxHeldIDs index IDs, ascending; More
// says that more follow the last one.
type HeldIDs struct {
	More bool
	IDs  []block.ID
}

// HeldGet asks for one held block (an index block, a locator or a
// shard) of Owner's.
type HeldGet struct {
	Owner block.ID
	ID    block.ID
}

// HeldBlock answers HeldGet.
type HeldBlock struct{ Block []byte }

// HeldConfirm tells the server that Owner's device has the mails of the
// index IDs, signed by the owner's current key, so it may drop them.
type HeldConfirm struct {
	Owner     block.ID
	Time      uint64 // Unix seconds when signed
	IDs       []block.ID
	Signature [SignatureSize]byte
}

func (Hold) Type() MsgType        { return TypeHold }
func (HoldStatus) Type() MsgType  { return TypeHoldStatus }
func (HeldList) Type() MsgType    { return TypeHeldList }
func (HeldIDs) Type() MsgType     { return TypeHeldIDs }
func (HeldGet) Type() MsgType     { return TypeHeldGet }
func (HeldBlock) Type() MsgType   { return TypeHeldBlock }
func (HeldConfirm) Type() MsgType { return TypeHeldConfirm }

func (m Hold) appendBody(b []byte) []byte { return append(b, m.Owner[:]...) }

func (m HoldStatus) appendBody(b []byte) []byte {
	b = append(b, byte(m.State))
	b = binary.BigEndian.AppendUint64(b, m.NotAfter)
	b = binary.BigEndian.AppendUint32(b, m.Mails)
	b = binary.BigEndian.AppendUint64(b, m.Bytes)
	b = binary.BigEndian.AppendUint64(b, m.QuotaBytes)
	return append(append(b, byte(len(m.Text))), m.Text...)
}

func (m HeldList) appendBody(b []byte) []byte { return append(append(b, m.Owner[:]...), m.After[:]...) }

func appendIDs(b []byte, ids []block.ID) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(ids)))
	for _, id := range ids {
		b = append(b, id[:]...)
	}
	return b
}

func (m HeldIDs) appendBody(b []byte) []byte {
	more := byte(0)
	if m.More {
		more = 1
	}
	return appendIDs(append(b, more), m.IDs)
}

func (m HeldGet) appendBody(b []byte) []byte { return append(append(b, m.Owner[:]...), m.ID[:]...) }

func (m HeldBlock) appendBody(b []byte) []byte {
	return append(binary.BigEndian.AppendUint32(b, uint32(len(m.Block))), m.Block...)
}

func (m HeldConfirm) appendBody(b []byte) []byte {
	return append(m.appendSigned(b), m.Signature[:]...)
}

// appendSigned is HELD_CONFIRM up to its signature.
func (m HeldConfirm) appendSigned(b []byte) []byte {
	b = append(b, m.Owner[:]...)
	b = binary.BigEndian.AppendUint64(b, m.Time)
	return appendIDs(b, m.IDs)
}

// ConfirmSigned is what HELD_CONFIRM's signature covers (section 21.5):
// the server's node ID, then the message's fields before the signature,
// so a confirmation for one server is no use at another.
func ConfirmSigned(server block.ID, m HeldConfirm) []byte {
	return m.appendSigned(append([]byte(nil), server[:]...))
}

func (r *reader) id(field string) (id block.ID) {
	r.fixed(id[:], field)
	return id
}

func (r *reader) u8(field string) uint8 {
	if b := r.take(1, field); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16(field string) uint16 {
	if b := r.take(2, field); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u32(field string) uint32 {
	if b := r.take(4, field); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64(field string) uint64 {
	if b := r.take(8, field); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// ids reads count u16 (lo to MaxHeldIDs) and that many IDs, strictly
// ascending.
func (r *reader) ids(lo int) []block.ID {
	n := int(r.u16("count"))
	if r.err != nil {
		return nil
	}
	if n < lo || n > MaxHeldIDs {
		r.fail(ErrLengthRange, "count %d, want %d to %d", n, lo, MaxHeldIDs)
		return nil
	}
	raw := r.take(n*block.IDSize, "ids")
	if r.err != nil {
		return nil
	}
	ids := make([]block.ID, n)
	for i := range ids {
		copy(ids[i][:], raw[i*block.IDSize:])
		if i > 0 && !block.Less(ids[i-1], ids[i]) {
			r.fail(ErrOrder, "IDs not in strictly ascending order")
			return nil
		}
	}
	return ids
}

// decodeHeld decodes the body of a held-mail message of type t, or
// reports false for another type.
func decodeHeld(t MsgType, r *reader) (Message, bool) {
	switch t {
	case TypeHold:
		return Hold{Owner: r.id("owner")}, true
	case TypeHoldStatus:
		var v HoldStatus
		v.State = HoldState(r.u8("state"))
		if r.err == nil && v.State > lastHoldState {
			r.fail(ErrLengthRange, "state %d, at most %d", v.State, lastHoldState)
		}
		v.NotAfter, v.Mails, v.Bytes, v.QuotaBytes = r.u64("not_after"), r.u32("mails"), r.u64("bytes"), r.u64("quota")
		n := int(r.u8("text_len"))
		if r.err == nil && n > MaxStatusText {
			r.fail(ErrLengthRange, "text_len %d, at most %d", n, MaxStatusText)
		}
		text := r.take(n, "text")
		for _, c := range text {
			if c < 0x20 || c >= 0x7f {
				r.fail(ErrAccountBytes, "text holds byte %#02x (printable ASCII only)", c)
				break
			}
		}
		v.Text = string(text)
		return v, true
	case TypeHeldList:
		return HeldList{Owner: r.id("owner"), After: r.id("after")}, true
	case TypeHeldIDs:
		var v HeldIDs
		more := r.u8("more")
		if r.err == nil && more > 1 {
			r.fail(ErrLengthRange, "more %d, want 0 or 1", more)
		}
		v.More = more == 1
		v.IDs = r.ids(0)
		return v, true
	case TypeHeldGet:
		return HeldGet{Owner: r.id("owner"), ID: r.id("id")}, true
	case TypeHeldBlock:
		n := int(r.u32("block_len"))
		if r.err == nil && (n < 1 || n > block.MaxBlockSize) {
			r.fail(ErrLengthRange, "block_len %d, want 1 to %d", n, block.MaxBlockSize)
		}
		return HeldBlock{Block: append([]byte(nil), r.take(n, "block")...)}, true
	case TypeHeldConfirm:
		var v HeldConfirm
		v.Owner, v.Time = r.id("owner"), r.u64("time")
		v.IDs = r.ids(1)
		r.fixed(v.Signature[:], "signature")
		return v, true
	}
	return nil, false
}
