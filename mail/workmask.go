package mail

import (
	"crypto/hmac"
	"crypto/hpke"
	"crypto/sha256"
	"fmt"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

// Labels of the masked work and the grant claim (spec 6, 17.3).
const (
	labelWorkMask = "flowmail/v1 work mask"
	labelGrantMAC = "flowmail/v1 grant mac"
)

// encSize is the HPKE encapsulation that starts an index block's sealed
// part (spec 4.4).
const encSize = 1120

// RoutePrefix is L of spec 6: the leading bits of a recipient's address
// that every index block to it shows, for a recipient demanding d.
func RoutePrefix(d int) int { return min(d, RouteBits) }

// GrantClaim is what a sender needs to claim a grant in an index block
// (spec 17.3): the grant's ID and key.
type GrantClaim struct {
	ID  [GrantIDSize]byte
	Key [32]byte
}

// workTarget is T of spec 6: the recipient's address XOR the mask the
// HPKE context exports, with the mask's first RoutePrefix(d) bits cleared.
func workTarget(recipient block.ID, d int, export func(string, int) ([]byte, error)) (block.ID, error) {
	m, err := export(labelWorkMask, block.IDSize)
	if err != nil {
		return block.ID{}, fmt.Errorf("mail: exporting the work mask: %w", err)
	}
	clearLeadingBits(m, RoutePrefix(d))
	t := recipient
	for i := range t {
		t[i] ^= m[i]
	}
	return t, nil
}

// clearLeadingBits sets the first n bits of b to zero.
func clearLeadingBits(b []byte, n int) {
	for i := 0; i < n/8; i++ {
		b[i] = 0
	}
	if n%8 != 0 {
		b[n/8] &= 0xff >> (n % 8)
	}
}

// GrantMAC is grant_mac of spec 17.3: an HMAC under the grant's key over
// the recipient's address, the index block's HPKE encapsulation and the
// padded manifest with grant_mac zero.
func GrantMAC(key *[32]byte, recipient block.ID, enc []byte, manifest0 []byte) [GrantMACSize]byte {
	h := hmac.New(sha256.New, key[:])
	h.Write([]byte{byte(len(labelGrantMAC))})
	h.Write([]byte(labelGrantMAC))
	h.Write(recipient[:])
	h.Write(enc)
	h.Write(manifest0)
	var out [GrantMACSize]byte
	h.Sum(out[:0])
	return out
}

// sealManifest seals man to r (spec 4.4) on a fresh HPKE context and
// returns the sealed bytes and the target the nonce must be ground to:
// T of spec 6, and how many bits of it: r's D, or only the public prefix
// under a grant claim, whose MAC it fills in first (spec 17.3).
func sealManifest(man *Manifest, r *identity.PublicKey, claim *GrantClaim) (sealed []byte, target block.ID, bits int, err error) {
	return sealManifestTo(man, r, claim, newSealer(r))
}

// sealer is an HPKE sender context to one recipient: the encapsulation
// (X25519 and ML-KEM) is most of sealing a manifest and needs nothing of
// it, so Build makes it while the body is built.
type sealer struct {
	enc []byte
	s   *hpke.Sender
	err error
}

func newSealer(r *identity.PublicKey) sealer {
	enc, s, err := hpke.NewSender(r.EncKey, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), []byte(block.LabelIndex))
	return sealer{enc: enc, s: s, err: err}
}

// sealManifestTo is sealManifest with the sender context made already.
func sealManifestTo(man *Manifest, r *identity.PublicKey, claim *GrantClaim, hs sealer) (sealed []byte, target block.ID, bits int, err error) {
	enc, s := hs.enc, hs.s
	if hs.err != nil {
		return nil, block.ID{}, 0, fmt.Errorf("mail: sealing the manifest to %s: %w", r.Address(), hs.err)
	}
	d := int(r.Difficulty)
	target, err = workTarget(r.Owner, d, s.Export)
	if err != nil {
		return nil, block.ID{}, 0, err
	}
	bits = d
	man.GrantID, man.GrantMAC = [GrantIDSize]byte{}, [GrantMACSize]byte{}
	if claim != nil {
		man.GrantID = claim.ID
		man.GrantMAC = GrantMAC(&claim.Key, r.Owner, enc, man.Encode())
		bits = RoutePrefix(d)
	}
	ct, err := s.Seal(nil, man.Encode())
	if err != nil {
		return nil, block.ID{}, 0, fmt.Errorf("mail: sealing the manifest to %s: %w", r.Address(), err)
	}
	return append(enc, ct...), target, bits, nil
}
