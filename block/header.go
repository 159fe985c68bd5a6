package block

import (
	"errors"
	"fmt"
)

// Type is the second byte of every block.
type Type uint8

// Block types of version 1. Zero is never valid.
const (
	TypePubkey Type = 1
	TypeData   Type = 2
	TypeIndex  Type = 3
	TypeRecord Type = 4 // a signed mutable record, stored at its slot (package record)
)

func (t Type) String() string {
	switch t {
	case TypePubkey:
		return "pubkey"
	case TypeData:
		return "data"
	case TypeIndex:
		return "index"
	case TypeRecord:
		return "record"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// FlagDeletion marks a header that carries a deletion hash.
const FlagDeletion = 0x01

// FlagLocator marks an index block that names its mail's locator block
// (docs/PROTOCOL.md 4.4, 21.2): the ID sits between the sealed manifest
// and the nonce. Only index blocks may set it.
const FlagLocator = 0x02

// Header sizes: version, type, flags, and the optional deletion hash.
const (
	HeaderSize             = 3
	HeaderSizeWithDeletion = HeaderSize + 32
)

// Errors a decoder returns, wrapped with detail. Test vectors name them by
// the text after "block: ".
var (
	ErrTruncated   = errors.New("block: truncated")
	ErrTooLarge    = errors.New("block: too large")
	ErrVersion     = errors.New("block: unsupported version")
	ErrType        = errors.New("block: unknown type")
	ErrFlags       = errors.New("block: invalid flags")
	ErrTrailing    = errors.New("block: trailing bytes")
	ErrEmpty       = errors.New("block: empty payload")
	ErrWrongType   = errors.New("block: wrong type")
	ErrNotAccepted = errors.New("block: type not accepted here")
	ErrPubkey      = errors.New("block: invalid pubkey block")
	ErrSignature   = errors.New("block: bad signature")
)

// Header is the clear prefix of every block.
type Header struct {
	Version      uint8
	Type         Type
	HasDeletion  bool
	DeletionHash [32]byte
	// HasLocator (index blocks only) says the block names a locator
	// block; the ID itself is Index.Locator, near the block's end.
	HasLocator bool
}

// Size is the number of bytes the header takes in its block.
func (h Header) Size() int {
	if h.HasDeletion {
		return HeaderSizeWithDeletion
	}
	return HeaderSize
}

// Append appends the encoded header to dst.
func (h Header) Append(dst []byte) []byte {
	flags := byte(0)
	if h.HasDeletion {
		flags |= FlagDeletion
	}
	if h.HasLocator {
		flags |= FlagLocator
	}
	dst = append(dst, h.Version, byte(h.Type), flags)
	if h.HasDeletion {
		dst = append(dst, h.DeletionHash[:]...)
	}
	return dst
}

// ParseHeader decodes the header of b and returns it with the rest of the
// block. It checks what the header alone can tell: size, version, a known
// type, flags allowed for that type.
func ParseHeader(b []byte) (Header, []byte, error) {
	var h Header
	if len(b) > MaxBlockSize {
		return h, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), MaxBlockSize)
	}
	if len(b) < HeaderSize {
		return h, nil, fmt.Errorf("%w: %d bytes, header needs %d", ErrTruncated, len(b), HeaderSize)
	}
	h.Version, h.Type = b[0], Type(b[1])
	flags := b[2]
	if h.Version != Version {
		return h, nil, fmt.Errorf("%w: %d (this node speaks %d)", ErrVersion, h.Version, Version)
	}
	switch h.Type {
	case TypePubkey, TypeData, TypeIndex, TypeRecord:
	default:
		return h, nil, fmt.Errorf("%w: %d", ErrType, b[1])
	}
	if flags&^(FlagDeletion|FlagLocator) != 0 {
		return h, nil, fmt.Errorf("%w: reserved bits set in %#02x", ErrFlags, flags)
	}
	if flags&FlagLocator != 0 {
		if h.Type != TypeIndex {
			return h, nil, fmt.Errorf("%w: a %v block cannot name a locator", ErrFlags, h.Type)
		}
		h.HasLocator = true
	}
	if flags&FlagDeletion != 0 {
		if h.Type != TypeData && h.Type != TypeIndex {
			return h, nil, fmt.Errorf("%w: a %v block cannot carry a deletion hash", ErrFlags, h.Type)
		}
		if len(b) < HeaderSizeWithDeletion {
			return h, nil, fmt.Errorf("%w: %d bytes, header with deletion hash needs %d", ErrTruncated, len(b), HeaderSizeWithDeletion)
		}
		h.HasDeletion = true
		copy(h.DeletionHash[:], b[HeaderSize:HeaderSizeWithDeletion])
	}
	return h, b[h.Size():], nil
}
