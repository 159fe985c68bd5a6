package account

import (
	"encoding/binary"
	"fmt"
)

// RecordVersion is the first byte of a stored account record. Version 1
// records were made with the library's own Argon2id inside OPAQUE,
// before the stretch OPRF (18.2); they do not open with version 2
// clients, so they are refused and their users register again.
const RecordVersion = 2

// ksfSize is the encoded KSFParams: id u8, time u32, memory u32, lanes u8.
const ksfSize = 1 + 4 + 4 + 1

// Record is what a server stores for an account (docs/PROTOCOL.md
// section 18.4): the key-stretching parameters, the OPAQUE registration
// record and the sealed identity. Nothing in it is the password or the
// identity key, and without the server's OPRF seed nothing in it lets a
// password guess be checked.
type Record struct {
	KSF    KSFParams
	OPAQUE []byte // RecordSize bytes
	Sealed []byte // SealOverhead+1 to MaxSealedSize bytes
}

// MaxRecordSize bounds an encoded Record.
const MaxRecordSize = 1 + ksfSize + RecordSize + 2 + MaxSealedSize

// AppendKSF appends p's encoding (section 18.2) to b.
func AppendKSF(b []byte, p KSFParams) []byte {
	b = append(b, p.ID)
	b = binary.BigEndian.AppendUint32(b, p.Time)
	b = binary.BigEndian.AppendUint32(b, p.MemoryKiB)
	return append(b, p.Lanes)
}

// ParseKSF reads the ksfSize bytes of an encoded KSFParams.
func ParseKSF(b []byte) (KSFParams, error) {
	if err := checkLen("KSF parameters", b, ksfSize); err != nil {
		return KSFParams{}, err
	}
	return KSFParams{ID: b[0], Time: binary.BigEndian.Uint32(b[1:]), MemoryKiB: binary.BigEndian.Uint32(b[5:]), Lanes: b[9]}, nil
}

// KSFSize is the size of an encoded KSFParams.
const KSFSize = ksfSize

// Marshal encodes r: version u8 (2), ksf [10], opaque [192], sealed_len u16,
// sealed.
func (r *Record) Marshal() []byte {
	b := make([]byte, 0, 1+ksfSize+len(r.OPAQUE)+2+len(r.Sealed))
	b = append(b, RecordVersion)
	b = AppendKSF(b, r.KSF)
	b = append(b, r.OPAQUE...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.Sealed)))
	return append(b, r.Sealed...)
}

// ParseRecord is the inverse of Marshal. It checks every length and the
// OPAQUE record's encoding; it copies what it keeps.
func ParseRecord(b []byte) (*Record, error) {
	const fixed = 1 + ksfSize + RecordSize + 2
	if len(b) < fixed || len(b) > MaxRecordSize {
		return nil, fmt.Errorf("%w: account record of %d bytes, want %d to %d", ErrMalformed, len(b), fixed, MaxRecordSize)
	}
	if b[0] == 1 {
		return nil, fmt.Errorf("%w: account record version 1, made before the stretch OPRF (docs/PROTOCOL.md 18.2): its user registers again", ErrMalformed)
	}
	if b[0] != RecordVersion {
		return nil, fmt.Errorf("%w: account record version %d", ErrMalformed, b[0])
	}
	ksf, _ := ParseKSF(b[1 : 1+ksfSize])
	if err := ksf.Check(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	op := b[1+ksfSize : 1+ksfSize+RecordSize]
	if _, err := parseRecord(op); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(b[fixed-2:]))
	sealed := b[fixed:]
	if len(sealed) != n || n <= SealOverhead {
		return nil, fmt.Errorf("%w: sealed identity of %d bytes, length says %d (at least %d)", ErrMalformed, len(sealed), n, SealOverhead+1)
	}
	return &Record{KSF: ksf, OPAQUE: append([]byte(nil), op...), Sealed: append([]byte(nil), sealed...)}, nil
}
