package block

import (
	"encoding/binary"
	"fmt"
)

// Data is a decoded data block: one erasure-coded shard of an encrypted mail.
type Data struct {
	Header  Header
	Payload []byte
}

// Encode returns the block bytes.
func (d Data) Encode() []byte {
	h := d.Header
	h.Version, h.Type = Version, TypeData
	return append(h.Append(make([]byte, 0, h.Size()+len(d.Payload))), d.Payload...)
}

// ParseData decodes a data block. The payload aliases b.
func ParseData(b []byte) (Data, error) {
	h, rest, err := ParseHeader(b)
	if err != nil {
		return Data{}, err
	}
	if h.Type != TypeData {
		return Data{}, fmt.Errorf("%w: want data, got %v", ErrWrongType, h.Type)
	}
	if len(rest) == 0 {
		return Data{}, fmt.Errorf("%w: data block", ErrEmpty)
	}
	return Data{Header: h, Payload: rest}, nil
}

// Index is a decoded index block: an HPKE-sealed manifest of a mail for one
// recipient, followed by the proof-of-work nonce.
type Index struct {
	Header Header
	Sealed []byte // HPKE encapsulated key || ciphertext
	// Locator is the ID of the mail's locator block when
	// Header.HasLocator (spec 21.2): readable by anyone, so a delegate
	// finds the mail's shards without opening the manifest.
	Locator ID
	Nonce   uint64
}

// Encode returns the block bytes.
func (x Index) Encode() []byte {
	h := x.Header
	h.Version, h.Type = Version, TypeIndex
	b := h.Append(make([]byte, 0, h.Size()+len(x.Sealed)+NonceSize))
	b = append(b, x.Sealed...)
	if h.HasLocator {
		b = append(b, x.Locator[:]...)
	}
	return binary.BigEndian.AppendUint64(b, x.Nonce)
}

// ParseIndex decodes an index block. Sealed aliases b. It does not check the
// proof of work: that needs the recipient's ID and difficulty (package pow).
func ParseIndex(b []byte) (Index, error) {
	h, rest, err := ParseHeader(b)
	if err != nil {
		return Index{}, err
	}
	if h.Type != TypeIndex {
		return Index{}, fmt.Errorf("%w: want index, got %v", ErrWrongType, h.Type)
	}
	if !h.HasDeletion {
		return Index{}, fmt.Errorf("%w: an index block must carry a deletion hash", ErrFlags)
	}
	least := MinIndexSize
	if h.HasLocator {
		least += IDSize
	}
	if len(b) < least {
		return Index{}, fmt.Errorf("%w: index block of %d bytes, minimum %d", ErrTruncated, len(b), least)
	}
	n := len(rest) - NonceSize
	x := Index{Header: h, Nonce: binary.BigEndian.Uint64(rest[n:])}
	if h.HasLocator {
		n -= IDSize
		copy(x.Locator[:], rest[n:])
	}
	x.Sealed = rest[:n]
	return x, nil
}

// Check decodes b as far as its layout goes: the header for every type and
// the pubkey, data and index layouts. It does not verify signatures or keys
// (identity.Check does). It refuses records: they are not named by their
// hash but stored at a slot, and verified by package record.
func Check(b []byte) (Header, error) {
	h, _, err := ParseHeader(b)
	if err != nil {
		return h, err
	}
	switch h.Type {
	case TypeRecord:
		return h, fmt.Errorf("%w: a record is stored at its slot, not as a block named by its hash", ErrNotAccepted)
	case TypePubkey:
		_, err = ParsePubkey(b)
	case TypeData:
		_, err = ParseData(b)
	case TypeIndex:
		_, err = ParseIndex(b)
	}
	return h, err
}
