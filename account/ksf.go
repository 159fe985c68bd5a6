package account

import (
	"fmt"

	"github.com/bytemare/ksf"
)

// KSFArgon2id is the only key-stretching function identifier (the KSF
// field of an account record).
const KSFArgon2id = 1

// KSFParams are an account's key-stretching parameters, stored with it so
// they can be raised: a client refuses parameters it cannot run rather
// than compute another function than the one registered with.
type KSFParams struct {
	ID        uint8  // KSFArgon2id
	Time      uint32 // passes
	MemoryKiB uint32
	Lanes     uint8
}

// DefaultKSF is Argon2id with 64 MiB, 3 passes and 4 lanes.
var DefaultKSF = KSFParams{ID: KSFArgon2id, Time: 3, MemoryKiB: 64 << 10, Lanes: 4}

// supported reports whether this build runs p. bytemare/opaque v0.10.0
// applies the Argon2id of golang.org/x/crypto with fixed parameters (its
// Configuration names the function, not its parameters), so the one
// runnable set is the one the library's function has; a test checks it
// equals DefaultKSF. Raising the parameters means a library that takes
// them, and a re-registration (account password).
func (p KSFParams) supported() error {
	lib := ksf.Argon2id.Get().Params() // time, memory KiB, threads
	if p.ID != KSFArgon2id || len(lib) != 3 ||
		int(p.Time) != lib[0] || int(p.MemoryKiB) != lib[1] || int(p.Lanes) != lib[2] {
		return fmt.Errorf("%w: %s (this build runs %v)", ErrUnsupportedKSF, p, lib)
	}
	return nil
}

func (p KSFParams) String() string {
	if p.ID != KSFArgon2id {
		return fmt.Sprintf("ksf(%d)", p.ID)
	}
	return fmt.Sprintf("Argon2id t=%d m=%d KiB p=%d", p.Time, p.MemoryKiB, p.Lanes)
}
