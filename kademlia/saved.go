package kademlia

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/transport"
)

// The saved-contacts file lets a restarted node rejoin without a
// bootstrap list:
//
//	magic      [21]  "flowmail-contacts v1\n"
//	count      u16   0 to MaxSavedContacts
//	contacts   count × (id [32] || addr || last_seen u64)
//
// addr is the layout of docs/PROTOCOL.md section 7; IDs are distinct and
// never zero; nothing follows the last contact.
const contactsMagic = "flowmail-contacts v1\n"

// MaxSavedContacts bounds a saved-contacts file: a full routing table.
const MaxSavedContacts = numBuckets * K

// Errors of DecodeContacts beyond those of the wire codec.
var (
	ErrContactsMagic = errors.New("kademlia: not a saved-contacts file")
	ErrBadContact    = errors.New("kademlia: zero or duplicate contact ID")
)

// SavedContact is one contact of a saved-contacts file.
type SavedContact struct {
	transport.Contact
	LastSeen uint64 // Unix seconds
}

// EncodeContacts writes the saved-contacts file.
func EncodeContacts(cs []SavedContact) ([]byte, error) {
	if len(cs) > MaxSavedContacts {
		return nil, fmt.Errorf("%w: %d contacts, limit %d", ErrTooMany, len(cs), MaxSavedContacts)
	}
	seen := make(map[block.ID]struct{}, len(cs))
	b := append([]byte(contactsMagic), byte(len(cs)>>8), byte(len(cs)))
	var err error
	for _, c := range cs {
		if _, dup := seen[c.ID]; dup || c.ID.IsZero() {
			return nil, fmt.Errorf("%w: %v", ErrBadContact, c.ID.Short())
		}
		seen[c.ID] = struct{}{}
		b = append(b, c.ID[:]...)
		if b, err = appendAddr(b, c.Addr); err != nil {
			return nil, err
		}
		b = binary.BigEndian.AppendUint64(b, c.LastSeen)
	}
	return b, nil
}

// DecodeContacts reads a saved-contacts file.
func DecodeContacts(b []byte) ([]SavedContact, error) {
	if len(b) < len(contactsMagic) || string(b[:len(contactsMagic)]) != contactsMagic {
		return nil, ErrContactsMagic
	}
	r := &reader{b: b[len(contactsMagic):], what: "saved contacts"}
	n := int(r.u16("count"))
	if r.err == nil && n > MaxSavedContacts {
		r.err = fmt.Errorf("%w: %d contacts, limit %d", ErrTooMany, n, MaxSavedContacts)
	}
	// The smallest contact is 32 + 7 + 8 bytes: check before allocating.
	const minContact = block.IDSize + 7 + 8
	if r.err == nil && len(r.b) < n*minContact {
		r.err = fmt.Errorf("%w: %d contacts need at least %d bytes, %d left", ErrTruncated, n, n*minContact, len(r.b))
	}
	if r.err != nil {
		return nil, r.err
	}
	out := make([]SavedContact, 0, n)
	seen := make(map[block.ID]struct{}, n)
	for range n {
		c := SavedContact{Contact: transport.Contact{ID: r.id("id")}}
		c.Addr = r.addr("addr")
		c.LastSeen = r.u64("last_seen")
		if r.err != nil {
			return nil, r.err
		}
		if _, dup := seen[c.ID]; dup || c.ID.IsZero() {
			return nil, fmt.Errorf("%w: %v", ErrBadContact, c.ID.Short())
		}
		seen[c.ID] = struct{}{}
		out = append(out, c)
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return out, nil
}

// SaveContacts encodes the routing table as a saved-contacts file, most
// recently seen first, for Bootstrap at the next start.
func (d *DHT) SaveContacts() ([]byte, error) {
	infos := d.table.contacts()
	cs := make([]SavedContact, len(infos))
	for i, c := range infos {
		cs[i] = SavedContact{Contact: c.Contact, LastSeen: uint64(max(c.LastSeen.Unix(), 0))}
	}
	slices.SortStableFunc(cs, func(a, b SavedContact) int { return cmp.Compare(b.LastSeen, a.LastSeen) })
	return EncodeContacts(cs)
}
