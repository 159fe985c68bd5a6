package identity

import (
	"crypto/ed25519"
	"fmt"
)

// signingPlainSize is the plaintext of a signing key file: role and the
// Ed25519 seed (docs/PROTOCOL.md section 10).
const signingPlainSize = 1 + ed25519.SeedSize

// WriteSigningKeyFile writes a bare Ed25519 signing key, a domain's key,
// to path with mode 0600, framed and protected as identity key files are
// (role 3). An existing file is never replaced.
func WriteSigningKeyFile(path string, k ed25519.PrivateKey, opt KeyFileOptions) error {
	body, err := seal(append([]byte{roleSigning}, k.Seed()...), opt)
	if err != nil {
		return err
	}
	return writeFile(path, body, false)
}

// ReadSigningKeyFile loads a key WriteSigningKeyFile wrote. passphrase is
// called only when the file is protected.
func ReadSigningKeyFile(path string, passphrase func() ([]byte, error)) (ed25519.PrivateKey, error) {
	b, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	k, err := DecodeSigningKeyFile(b, passphrase)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// DecodeSigningKeyFile parses the bytes of a signing key file.
func DecodeSigningKeyFile(b []byte, passphrase func() ([]byte, error)) (ed25519.PrivateKey, error) {
	plain, v1, err := open(b, passphrase)
	if err != nil {
		return nil, err
	}
	switch {
	case v1 || len(plain) > 0 && plain[0] == roleIdentity:
		return nil, fmt.Errorf("%w: this is an identity's key file, not a signing key", ErrKeyFileRole)
	case len(plain) > 0 && plain[0] == roleNext:
		return nil, fmt.Errorf("%w: this is a next key file, not a signing key", ErrKeyFileRole)
	case len(plain) == 0 || plain[0] != roleSigning:
		return nil, fmt.Errorf("%w: unknown key role", ErrKeyFile)
	case len(plain) != signingPlainSize:
		return nil, fmt.Errorf("%w: %d bytes of signing key, want %d", ErrKeyFile, len(plain), signingPlainSize)
	}
	return ed25519.NewKeyFromSeed(plain[1:]), nil
}
