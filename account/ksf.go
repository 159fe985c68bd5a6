package account

import (
	"fmt"

	"golang.org/x/crypto/argon2"
)

// KSFArgon2id is the only key-stretching function identifier (the KSF
// field of an account record).
const KSFArgon2id = 1

// KSFParams are an account's key-stretching parameters, stored with it so
// they can be raised. A client runs only parameters within the bounds
// below: never weaker than the minimum, whoever asks, and never so costly
// that a hostile server can make a device allocate what it likes.
type KSFParams struct {
	ID        uint8  // KSFArgon2id
	Time      uint32 // passes
	MemoryKiB uint32
	Lanes     uint8
}

// Bounds of the Argon2id parameters (docs/PROTOCOL.md sections 11 and
// 18.2). The minimum is the 64 MiB, 3 passes, 4 lanes; the
// maximum memory is what a phone can still spare once.
const (
	MinArgon2Time      = 3
	MaxArgon2Time      = 16
	MinArgon2MemoryKiB = 64 << 10
	MaxArgon2MemoryKiB = 1 << 20 // 1 GiB
	MinArgon2Lanes     = 4
	MaxArgon2Lanes     = 16
)

// DefaultKSF is Argon2id with 64 MiB, 3 passes and 4 lanes: the minimum.
var DefaultKSF = KSFParams{ID: KSFArgon2id, Time: MinArgon2Time, MemoryKiB: MinArgon2MemoryKiB, Lanes: MinArgon2Lanes}

// Check reports whether p is a function this implementation runs
// (ErrUnsupportedKSF) with parameters within the bounds (ErrKSFBounds).
func (p KSFParams) Check() error {
	if p.ID != KSFArgon2id {
		return fmt.Errorf("%w: %s", ErrUnsupportedKSF, p)
	}
	switch {
	case p.Time < MinArgon2Time || p.MemoryKiB < MinArgon2MemoryKiB || p.Lanes < MinArgon2Lanes:
		return fmt.Errorf("%w: %s is below the minimum t=%d m=%d KiB p=%d", ErrKSFBounds, p, MinArgon2Time, MinArgon2MemoryKiB, MinArgon2Lanes)
	case p.Time > MaxArgon2Time || p.MemoryKiB > MaxArgon2MemoryKiB || p.Lanes > MaxArgon2Lanes:
		return fmt.Errorf("%w: %s is above the maximum t=%d m=%d KiB p=%d", ErrKSFBounds, p, MaxArgon2Time, MaxArgon2MemoryKiB, MaxArgon2Lanes)
	}
	return nil
}

// AtLeast reports whether p costs at least q in every parameter.
func (p KSFParams) AtLeast(q KSFParams) bool {
	return p.ID == q.ID && p.Time >= q.Time && p.MemoryKiB >= q.MemoryKiB && p.Lanes >= q.Lanes
}

func (p KSFParams) String() string {
	if p.ID != KSFArgon2id {
		return fmt.Sprintf("ksf(%d)", p.ID)
	}
	return fmt.Sprintf("Argon2id t=%d m=%d KiB p=%d", p.Time, p.MemoryKiB, p.Lanes)
}

// Stretching (docs/PROTOCOL.md 18.2): Argon2id of the stretch OPRF's
// output, under a fixed salt (the output is already unique to the
// server, the account and the password), to StretchedSize bytes.
const (
	stretchSalt   = "flowmail/v1 account stretch"
	StretchedSize = 64
)

// stretch runs p over in; p must have passed Check.
func stretch(p KSFParams, in []byte) []byte {
	return argon2.IDKey(in, []byte(stretchSalt), p.Time, p.MemoryKiB, p.Lanes, StretchedSize)
}
