package block

import (
	"encoding/binary"
	"fmt"
)

// HPKE suite of protocol version 1 (RFC 9180 registry values): the only one
// a pubkey block may name.
const (
	KEMMLKEM768X25519    = 0x647a
	KDFHKDFSHA256        = 0x0001
	AEADChaCha20Poly1305 = 0x0003

	SignKeySize   = 32
	EncKeySize    = 1216 // ML-KEM-768 encapsulation key (1184) || X25519 (32)
	NextSize      = 32   // commitment to the next signing key
	SignatureSize = 64

	pubkeySignedSize = HeaderSize + 8 + 1 + 2 + 2 + 2 + SignKeySize + EncKeySize + NextSize
	// PubkeySize is the exact length of every version 1 pubkey block.
	PubkeySize = pubkeySignedSize + SignatureSize
)

// Pubkey is a decoded pubkey block. Its ID is a node's ID or a user's
// address. ParsePubkey checks the layout only; identity.ParsePubkey also
// checks the self-signature and the encryption key.
type Pubkey struct {
	Created    uint64 // Unix seconds
	Difficulty uint8  // D: leading bits an index block's ID must share with this ID
	KEM        uint16
	KDF        uint16
	AEAD       uint16
	SignKey    [SignKeySize]byte
	EncKey     [EncKeySize]byte
	// Next commits to the signing key of the identity's next generation
	// (NextCommitment): only its holder can rotate (pre-rotation).
	Next      [NextSize]byte
	Signature [SignatureSize]byte
}

// NextCommitment is the value a pubkey block's Next field carries for the
// next generation's Ed25519 public key.
func NextCommitment(nextSignKey []byte) [NextSize]byte {
	return LabeledHash(LabelNextKey, nextSignKey)
}

// AppendSigned appends the bytes the self-signature covers.
func (p *Pubkey) AppendSigned(dst []byte) []byte {
	dst = Header{Version: Version, Type: TypePubkey}.Append(dst)
	dst = binary.BigEndian.AppendUint64(dst, p.Created)
	dst = append(dst, p.Difficulty)
	dst = binary.BigEndian.AppendUint16(dst, p.KEM)
	dst = binary.BigEndian.AppendUint16(dst, p.KDF)
	dst = binary.BigEndian.AppendUint16(dst, p.AEAD)
	dst = append(dst, p.SignKey[:]...)
	dst = append(dst, p.EncKey[:]...)
	return append(dst, p.Next[:]...)
}

// Encode returns the block bytes.
func (p *Pubkey) Encode() []byte {
	return append(p.AppendSigned(make([]byte, 0, PubkeySize)), p.Signature[:]...)
}

// ParsePubkey decodes the layout of a pubkey block.
func ParsePubkey(b []byte) (*Pubkey, error) {
	h, _, err := ParseHeader(b)
	if err != nil {
		return nil, err
	}
	if h.Type != TypePubkey {
		return nil, fmt.Errorf("%w: want pubkey, got %v", ErrWrongType, h.Type)
	}
	if len(b) < PubkeySize {
		return nil, fmt.Errorf("%w: pubkey block of %d bytes, want %d", ErrTruncated, len(b), PubkeySize)
	}
	if len(b) > PubkeySize {
		return nil, fmt.Errorf("%w: pubkey block of %d bytes, want %d", ErrTrailing, len(b), PubkeySize)
	}
	p := &Pubkey{}
	r := b[HeaderSize:]
	p.Created = binary.BigEndian.Uint64(r)
	p.Difficulty = r[8]
	p.KEM = binary.BigEndian.Uint16(r[9:])
	p.KDF = binary.BigEndian.Uint16(r[11:])
	p.AEAD = binary.BigEndian.Uint16(r[13:])
	r = r[15:]
	r = r[copy(p.SignKey[:], r):]
	r = r[copy(p.EncKey[:], r):]
	r = r[copy(p.Next[:], r):]
	copy(p.Signature[:], r)
	if p.Difficulty > MaxDifficulty {
		return nil, fmt.Errorf("%w: difficulty %d above the maximum %d", ErrPubkey, p.Difficulty, MaxDifficulty)
	}
	if p.KEM != KEMMLKEM768X25519 || p.KDF != KDFHKDFSHA256 || p.AEAD != AEADChaCha20Poly1305 {
		return nil, fmt.Errorf("%w: HPKE suite %#04x/%#04x/%#04x, version 1 allows only %#04x/%#04x/%#04x",
			ErrPubkey, p.KEM, p.KDF, p.AEAD, KEMMLKEM768X25519, KDFHKDFSHA256, AEADChaCha20Poly1305)
	}
	return p, nil
}
