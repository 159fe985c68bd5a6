package identity

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/flowmail/flowmail/block"
)

// SeedSize is the size of the secret every key of an identity derives from.
const SeedSize = 32

// Labels of the key derivations from the seed.
const (
	labelSignSeed = "flowmail/v1 sign key"
	labelEncSeed  = "flowmail/v1 enc key"
	labelNextSeed = "flowmail/v1 next seed"
)

// Identity is the private side of one generation of an identity:
// everything needed to sign, decrypt, and present the pubkey block. An
// identity starts at generation 0, whose pubkey block's ID is its address;
// each rotation (Rotate) makes the next generation, with a new pubkey block
// and the same address.
type Identity struct {
	seed    [SeedSize]byte
	sign    ed25519.PrivateKey
	enc     hpke.PrivateKey
	public  *PublicKey
	created time.Time

	address    block.ID // the ID of generation 0's pubkey block
	generation int
	// retired are earlier generations' decryption keys, kept until the
	// grace period after their rotation ends (docs/PROTOCOL.md 15.5).
	retired []retiredKey
}

type retiredKey struct {
	seed  [SeedSize]byte
	enc   hpke.PrivateKey
	until time.Time
}

// Generate creates a new identity from fresh randomness. difficulty is the D
// its pubkey block demands of senders; created is stamped into the block.
// Its next key derives from its seed (FromSeed): right for a node; a user's
// identity comes from New, whose next key is a separate secret.
func Generate(difficulty int, created time.Time) (*Identity, error) {
	var seed [SeedSize]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("identity: reading randomness: %w", err)
	}
	return FromSeed(seed, difficulty, created)
}

// New creates a user's identity and its pre-committed next key, both from
// random (crypto/rand.Reader outside tests). The next key is what lets the
// owner rotate or move the identity: it belongs in a separate file, backed
// up offline, so a thief who copies the identity's key cannot rotate.
func New(difficulty int, created time.Time, random io.Reader) (*Identity, *NextKey, error) {
	var seed, nextSeed [SeedSize]byte
	if _, err := io.ReadFull(random, seed[:]); err != nil {
		return nil, nil, fmt.Errorf("identity: reading randomness: %w", err)
	}
	if _, err := io.ReadFull(random, nextSeed[:]); err != nil {
		return nil, nil, fmt.Errorf("identity: reading randomness: %w", err)
	}
	next := newNextKey(nextSeed, block.ID{}, 1)
	id, err := build(seed, difficulty, created, next.Commitment())
	if err != nil {
		return nil, nil, err
	}
	next.address = id.address
	return id, next, nil
}

// FromSeed rebuilds an identity deterministically: the same seed,
// difficulty and creation second give the same pubkey block and address.
// Its pubkey block commits to a next key derived from the seed itself
// (docs/PROTOCOL.md section 10), which suits a node: whoever holds the
// seed holds the next key too, so it gives no pre-rotation protection.
func FromSeed(seed [SeedSize]byte, difficulty int, created time.Time) (*Identity, error) {
	return build(seed, difficulty, created, block.NextCommitment(signPublic(derivedNextSeed(seed))))
}

func derivedNextSeed(seed [SeedSize]byte) [SeedSize]byte {
	return block.LabeledHash(labelNextSeed, seed[:])
}

// build makes generation 0 of an identity: its keys from seed and a pubkey
// block committing to next.
func build(seed [SeedSize]byte, difficulty int, created time.Time, next [block.NextSize]byte) (*Identity, error) {
	id, err := buildGeneration(seed, difficulty, created, next)
	if err != nil {
		return nil, err
	}
	id.address = id.public.ID
	return id, nil
}

// buildGeneration derives the keys of seed and signs their pubkey block;
// the caller sets the address and generation.
func buildGeneration(seed [SeedSize]byte, difficulty int, created time.Time, next [block.NextSize]byte) (*Identity, error) {
	if difficulty < 0 || difficulty > block.MaxDifficulty {
		return nil, fmt.Errorf("identity: difficulty %d outside 0..%d", difficulty, block.MaxDifficulty)
	}
	if created.Unix() < 0 {
		return nil, fmt.Errorf("identity: creation time %v before 1970", created)
	}
	signSeed := block.LabeledHash(labelSignSeed, seed[:])
	id := &Identity{seed: seed, sign: ed25519.NewKeyFromSeed(signSeed[:]), created: time.Unix(created.Unix(), 0)}
	var err error
	if id.enc, err = deriveEncKey(seed); err != nil {
		return nil, err
	}
	p := &block.Pubkey{
		Created:    uint64(created.Unix()),
		Difficulty: uint8(difficulty),
		KEM:        block.KEMMLKEM768X25519,
		KDF:        block.KDFHKDFSHA256,
		AEAD:       block.AEADChaCha20Poly1305,
		Next:       next,
	}
	copy(p.SignKey[:], id.sign.Public().(ed25519.PublicKey))
	copy(p.EncKey[:], id.enc.PublicKey().Bytes())
	sig := ed25519.Sign(id.sign, block.SignedMessage(block.LabelPubkey, p.AppendSigned(nil)))
	copy(p.Signature[:], sig)
	if id.public, err = ParsePubkey(p.Encode()); err != nil {
		return nil, fmt.Errorf("identity: own pubkey block does not verify: %w", err)
	}
	return id, nil
}

func deriveEncKey(seed [SeedSize]byte) (hpke.PrivateKey, error) {
	encSeed := block.LabeledHash(labelEncSeed, seed[:])
	k, err := hpke.MLKEM768X25519().DeriveKeyPair(encSeed[:])
	if err != nil {
		return nil, fmt.Errorf("identity: deriving encryption key: %w", err)
	}
	return k, nil
}

// signPublic returns the Ed25519 public key of the generation whose seed
// is seed.
func signPublic(seed [SeedSize]byte) ed25519.PublicKey {
	signSeed := block.LabeledHash(labelSignSeed, seed[:])
	return ed25519.NewKeyFromSeed(signSeed[:]).Public().(ed25519.PublicKey)
}

// Public returns the current generation's pubkey block and keys. Its ID
// is the address only at generation 0: use ID for the address.
func (id *Identity) Public() *PublicKey { return id.public }

// ID returns the identity's address as a block ID: the ID of generation
// 0's pubkey block, whatever the generation.
func (id *Identity) ID() block.ID { return id.address }

// Address returns the identity's address in text form.
func (id *Identity) Address() string { return FormatAddress(id.address) }

// Generation returns how many times the identity has rotated.
func (id *Identity) Generation() int { return id.generation }

// VerifyKey returns the current Ed25519 public key.
func (id *Identity) VerifyKey() ed25519.PublicKey { return id.public.SignKey }

// Difficulty returns the D this identity demands.
func (id *Identity) Difficulty() int { return int(id.public.Difficulty) }

// Created returns the creation time stamped into the current pubkey block.
func (id *Identity) Created() time.Time { return id.created }

// SigningKey returns the Ed25519 private key, for TLS certificates.
func (id *Identity) SigningKey() ed25519.PrivateKey { return id.sign }

// EncryptionKey returns the HPKE private key whose public half is the
// pubkey block's enc_key: an onion relay opens the layers sealed to it.
func (id *Identity) EncryptionKey() hpke.PrivateKey { return id.enc }

// Sign signs data for the purpose named by label (block.Label*).
func (id *Identity) Sign(label string, data []byte) [block.SignatureSize]byte {
	var sig [block.SignatureSize]byte
	copy(sig[:], ed25519.Sign(id.sign, block.SignedMessage(label, data)))
	return sig
}

// Open decrypts an HPKE message sealed to this identity under label: to
// the current encryption key or to a retired one still in its grace
// period (ForgetRetired drops those whose grace has ended).
func (id *Identity) Open(label string, sealed []byte) ([]byte, error) {
	if pt, err := hpke.Open(id.enc, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), []byte(label), sealed); err == nil {
		return pt, nil
	}
	for i := len(id.retired) - 1; i >= 0; i-- {
		if pt, err := hpke.Open(id.retired[i].enc, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), []byte(label), sealed); err == nil {
			return pt, nil
		}
	}
	return nil, ErrNotForMe
}

// DecryptionKeys returns the keys Open tries, in its order: the current
// one, then the retired ones still in their grace period, newest first.
// Package mail needs them to set up the HPKE context itself, for the
// work mask it exports (docs/PROTOCOL.md 6).
func (id *Identity) DecryptionKeys() []hpke.PrivateKey {
	keys := []hpke.PrivateKey{id.enc}
	for i := len(id.retired) - 1; i >= 0; i-- {
		keys = append(keys, id.retired[i].enc)
	}
	return keys
}

// ErrNotForMe is returned by Open when a message was not sealed to this
// identity (or was altered): the normal outcome for other people's mail.
var ErrNotForMe = errors.New("identity: message is not sealed to this identity")

// PublicKey is a verified pubkey block and the keys it carries.
type PublicKey struct {
	ID         block.ID
	Block      []byte
	Created    time.Time
	Difficulty int
	SignKey    ed25519.PublicKey
	EncKey     hpke.PublicKey
	Next       [block.NextSize]byte // commitment to the next generation's signing key
}

// ParsePubkey decodes a pubkey block and verifies its self-signature and its
// encryption key. The returned ID is the block's ID.
func ParsePubkey(b []byte) (*PublicKey, error) {
	p, err := block.ParsePubkey(b)
	if err != nil {
		return nil, err
	}
	if SmallOrder(p.SignKey[:]) {
		return nil, fmt.Errorf("%w: signing key of small order (anyone could sign for it)", block.ErrPubkey)
	}
	if !ed25519.Verify(p.SignKey[:], block.SignedMessage(block.LabelPubkey, b[:len(b)-block.SignatureSize]), p.Signature[:]) {
		return nil, fmt.Errorf("%w: pubkey block self-signature does not verify", block.ErrSignature)
	}
	enc, err := hpke.MLKEM768X25519().NewPublicKey(p.EncKey[:])
	if err != nil {
		return nil, fmt.Errorf("%w: encryption key: %v", block.ErrPubkey, err)
	}
	if err := checkX25519Share(p.EncKey[block.EncKeySize-x25519ShareSize:]); err != nil {
		return nil, fmt.Errorf("%w: encryption key: %v", block.ErrPubkey, err)
	}
	blk := append([]byte(nil), b...)
	return &PublicKey{
		ID:         block.Sum(blk),
		Block:      blk,
		Created:    time.Unix(int64(p.Created), 0),
		Difficulty: int(p.Difficulty),
		SignKey:    ed25519.PublicKey(append([]byte(nil), p.SignKey[:]...)),
		EncKey:     enc,
		Next:       p.Next,
	}, nil
}

// Address returns the address in text form.
func (p *PublicKey) Address() string { return FormatAddress(p.ID) }

// Verify checks a signature made by Identity.Sign with the same label.
func (p *PublicKey) Verify(label string, data []byte, sig []byte) bool {
	return len(sig) == block.SignatureSize && ed25519.Verify(p.SignKey, block.SignedMessage(label, data), sig)
}

// Seal encrypts plaintext to this key under label with HPKE (base mode).
// The result is the encapsulated key followed by the ciphertext.
func (p *PublicKey) Seal(label string, plaintext []byte) ([]byte, error) {
	return hpke.Seal(p.EncKey, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), []byte(label), plaintext)
}

// SealOverhead is how many bytes Seal adds: the ML-KEM-768 ciphertext and
// X25519 share (1120) plus the AEAD tag (16).
const SealOverhead = 1120 + 16

// Check validates a block as a store must before accepting it: its layout
// (block.Check) and, for a pubkey block, its signature and keys.
func Check(b []byte) (block.Header, error) {
	h, err := block.Check(b)
	if err != nil {
		return h, err
	}
	if h.Type == block.TypePubkey {
		_, err = ParsePubkey(b)
	}
	return h, err
}

// x25519ShareSize is the X25519 part at the end of an MLKEM768-X25519
// enc_key.
const x25519ShareSize = 32

// lowOrderProbe is an arbitrary fixed X25519 key. Clamping makes every
// X25519 scalar a multiple of the cofactor, so a share of low order
// (the all-zero point among them) gives the all-zero secret with any
// key, which crypto/ecdh refuses.
var lowOrderProbe = sync.OnceValue(func() *ecdh.PrivateKey {
	k, err := ecdh.X25519().NewPrivateKey([]byte("flowmail/v1 low-order X25519 ..."))
	if err != nil {
		panic(err) // 32 bytes: cannot fail
	}
	return k
})

// checkX25519Share refuses an X25519 share of low order: its half of
// the hybrid shared secret would be known to anyone, leaving ML-KEM alone
// to protect what is sealed to it (docs/PROTOCOL.md section 4.2).
func checkX25519Share(b []byte) error {
	pub, err := ecdh.X25519().NewPublicKey(b)
	if err != nil {
		return err
	}
	if _, err := lowOrderProbe().ECDH(pub); err != nil {
		return errors.New("X25519 share has low order")
	}
	return nil
}
