package account

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha512"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// Labels of the sealed identity (docs/PROTOCOL.md section 18.3).
const (
	sealKeyLabel = "flowmail/v1 account seal key"
	sealAADLabel = "flowmail/v1 account sealed identity"
)

// Sizes of a sealed identity: a nonce, the ciphertext and its tag.
const (
	SealOverhead = chacha20poly1305.NonceSize + chacha20poly1305.Overhead
	// MaxIdentitySize bounds what may be sealed: a key file with its
	// retired keys fits many times over.
	MaxIdentitySize = 8 << 10
	MaxSealedSize   = MaxIdentitySize + SealOverhead
)

// sealAEAD is ChaCha20-Poly1305 under HKDF-SHA-512 of OPAQUE's export
// key, bound to the account.
func sealAEAD(exportKey []byte, account string) (cipher.AEAD, error) {
	if len(exportKey) != ExportKeySize {
		return nil, fmt.Errorf("account: export key of %d bytes, want %d", len(exportKey), ExportKeySize)
	}
	key, err := hkdf.Key(sha512.New, exportKey, nil, sealKeyLabel+account, chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	return chacha20poly1305.New(key)
}

// Seal encrypts identity (the bytes of a key file) under the export key
// of account's OPAQUE registration.
func Seal(exportKey []byte, account string, identity []byte) ([]byte, error) {
	if len(identity) == 0 || len(identity) > MaxIdentitySize {
		return nil, fmt.Errorf("account: identity of %d bytes, want 1 to %d", len(identity), MaxIdentitySize)
	}
	var nonce [chacha20poly1305.NonceSize]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, err
	}
	return sealWithNonce(exportKey, account, identity, nonce)
}

// sealWithNonce is Seal with the nonce given (test vectors).
func sealWithNonce(exportKey []byte, account string, identity []byte, nonce [chacha20poly1305.NonceSize]byte) ([]byte, error) {
	aead, err := sealAEAD(exportKey, account)
	if err != nil {
		return nil, err
	}
	out := append(make([]byte, 0, SealOverhead+len(identity)), nonce[:]...)
	return aead.Seal(out, out, identity, []byte(sealAADLabel+account)), nil
}

// Open is the inverse of Seal: ErrSealed when sealed does not open under
// exportKey for account, ErrMalformed when its length is out of bounds.
func Open(exportKey []byte, account string, sealed []byte) ([]byte, error) {
	if len(sealed) <= SealOverhead || len(sealed) > MaxSealedSize {
		return nil, fmt.Errorf("%w: sealed identity of %d bytes, want %d to %d", ErrMalformed, len(sealed), SealOverhead+1, MaxSealedSize)
	}
	aead, err := sealAEAD(exportKey, account)
	if err != nil {
		return nil, err
	}
	n := chacha20poly1305.NonceSize
	plain, err := aead.Open(nil, sealed[:n], sealed[n:], []byte(sealAADLabel+account))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSealed, err)
	}
	return plain, nil
}
