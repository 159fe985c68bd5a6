package identity

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/flowmail/flowmail/block"
)

// NextKey is the secret of an identity's next generation: the key its
// current pubkey block commits to (block.NextCommitment). Revealing it
// (signing with it) is what rotating, and moving, the identity takes, so
// it lives in its own file (next.key), best kept offline.
type NextKey struct {
	seed       [SeedSize]byte
	sign       ed25519.PrivateKey
	address    block.ID
	generation int
}

func newNextKey(seed [SeedSize]byte, address block.ID, generation int) *NextKey {
	signSeed := block.LabeledHash(labelSignSeed, seed[:])
	return &NextKey{seed: seed, sign: ed25519.NewKeyFromSeed(signSeed[:]), address: address, generation: generation}
}

// ErrNoDerivedNextKey is returned by DerivedNextKey for an identity whose
// next key is a secret of its own (New, Rotate).
var ErrNoDerivedNextKey = errors.New("identity: the next key is not derived from the seed: it is in the next key file")

// DerivedNextKey returns the next key of an identity made by FromSeed (a
// node, or a key file of the first layout): the key of
// LH("flowmail/v1 next seed", seed). Such an identity can rotate, and its
// next generation gets a next key of its own.
func (id *Identity) DerivedNextKey() (*NextKey, error) {
	k := newNextKey(derivedNextSeed(id.seed), id.address, id.generation+1)
	if k.Commitment() != id.public.Next {
		return nil, ErrNoDerivedNextKey
	}
	return k, nil
}

// VerifyKey returns the Ed25519 public key: secret until the rotation or
// move that reveals it.
func (k *NextKey) VerifyKey() ed25519.PublicKey { return k.sign.Public().(ed25519.PublicKey) }

// Commitment is what the pubkey block of the generation before carries.
func (k *NextKey) Commitment() [block.NextSize]byte { return block.NextCommitment(k.VerifyKey()) }

// Address is the identity this key belongs to.
func (k *NextKey) Address() block.ID { return k.address }

// Generation is the generation this key becomes when revealed.
func (k *NextKey) Generation() int { return k.generation }

// Sign signs data for the purpose named by label, as Identity.Sign.
func (k *NextKey) Sign(label string, data []byte) [block.SignatureSize]byte {
	var sig [block.SignatureSize]byte
	copy(sig[:], ed25519.Sign(k.sign, block.SignedMessage(label, data)))
	return sig
}

func (k *NextKey) String() string {
	return fmt.Sprintf("next key of %s for generation %d", FormatAddress(k.address), k.generation)
}
