package identity

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/scrypt"
)

// Key file layout (docs/PROTOCOL.md, "Key file"). The file is local, never
// sent, and small enough that a fixed layout read with explicit length
// checks is simpler and stricter than any general codec.
const (
	keyFileMagic = "flowmail-key v1\n"

	kdfNone   = 0
	kdfScrypt = 1

	// DefaultScryptLogN costs about 128 MiB and a third of a second here:
	// slow enough to make guessing expensive, fast enough for every start.
	DefaultScryptLogN = 17
	minScryptLogN     = 10
	maxScryptLogN     = 20 // 1 GiB of memory: more would fail on small machines
	scryptR, scryptP  = 8, 1
	saltSize          = 16

	keyPlainSize = SeedSize + 1 + 8
)

// Key file errors.
var (
	ErrWrongPassphrase    = errors.New("wrong passphrase (or the key file is damaged)")
	ErrPassphraseRequired = errors.New("this key file is protected by a passphrase")
	ErrKeyFile            = errors.New("not a valid flowmail key file")
	ErrKeyFileExists      = errors.New("key file already exists")
	ErrKeyFilePermissions = errors.New("key file is readable by other users")
	ErrNoPassphrase       = errors.New("no passphrase given: choose one, or ask for an unprotected key (KeyFileOptions.NoPassphrase)")
)

// KeyFileOptions says how WriteKeyFile protects the key.
type KeyFileOptions struct {
	// Passphrase protects the key; empty means store it in clear, which is
	// allowed only with NoPassphrase set, so nobody does it by accident.
	Passphrase   []byte
	NoPassphrase bool
	// ScryptLogN is log2 of scrypt's N; zero means DefaultScryptLogN.
	ScryptLogN int
}

// WriteKeyFile writes id to path with mode 0600. The file appears complete
// or not at all, and an existing file is never replaced.
func WriteKeyFile(path string, id *Identity, opt KeyFileOptions) error {
	body, err := encodeKeyFile(id, opt)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".key-*.tmp")
	if err != nil {
		return fmt.Errorf("writing key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("writing key file: %w", err)
	}
	if _, err := tmp.Write(body); err != nil {
		tmp.Close()
		return fmt.Errorf("writing key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing key file: %w", err)
	}
	// A hard link publishes the finished file atomically and, unlike
	// rename, fails if the name is taken.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s", ErrKeyFileExists, path)
		}
		return fmt.Errorf("writing key file: %w", err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

func encodeKeyFile(id *Identity, opt KeyFileOptions) ([]byte, error) {
	plain := make([]byte, 0, keyPlainSize)
	plain = append(plain, id.seed[:]...)
	plain = append(plain, byte(id.Difficulty()))
	plain = binary.BigEndian.AppendUint64(plain, uint64(id.created.Unix()))

	out := []byte(keyFileMagic)
	if len(opt.Passphrase) == 0 {
		if !opt.NoPassphrase {
			return nil, ErrNoPassphrase
		}
		return append(append(out, kdfNone), plain...), nil
	}
	logN := opt.ScryptLogN
	if logN == 0 {
		logN = DefaultScryptLogN
	}
	if logN < minScryptLogN || logN > maxScryptLogN {
		return nil, fmt.Errorf("scrypt cost 2^%d outside 2^%d..2^%d", logN, minScryptLogN, maxScryptLogN)
	}
	var salt [saltSize]byte
	if _, err := rand.Read(salt[:]); err != nil {
		return nil, err
	}
	out = append(out, kdfScrypt, byte(logN), scryptR, scryptP)
	out = append(out, salt[:]...)
	aead, err := keyFileAEAD(opt.Passphrase, salt[:], logN)
	if err != nil {
		return nil, err
	}
	// The key is fresh for every file (fresh salt), so a zero nonce is safe;
	// the header is authenticated so its cost parameters cannot be swapped.
	return aead.Seal(out, make([]byte, chacha20poly1305.NonceSize), plain, out), nil
}

func keyFileAEAD(pass, salt []byte, logN int) (interface {
	Seal(dst, nonce, plaintext, ad []byte) []byte
	Open(dst, nonce, ciphertext, ad []byte) ([]byte, error)
}, error) {
	key, err := scrypt.Key(pass, salt, 1<<logN, scryptR, scryptP, chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("deriving key from passphrase: %w", err)
	}
	return chacha20poly1305.New(key)
}

// ReadKeyFile loads an identity. passphrase is called only when the file
// is protected; it may prompt the user.
func ReadKeyFile(path string, passphrase func() ([]byte, error)) (*Identity, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; run: chmod 600 %s", ErrKeyFilePermissions, path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	id, err := DecodeKeyFile(b, passphrase)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return id, nil
}

// DecodeKeyFile parses key file bytes.
func DecodeKeyFile(b []byte, passphrase func() ([]byte, error)) (*Identity, error) {
	if len(b) < len(keyFileMagic)+1 || !bytes.Equal(b[:len(keyFileMagic)], []byte(keyFileMagic)) {
		return nil, fmt.Errorf("%w: missing %q header", ErrKeyFile, keyFileMagic[:len(keyFileMagic)-1])
	}
	var plain []byte
	switch kdf := b[len(keyFileMagic)]; kdf {
	case kdfNone:
		plain = b[len(keyFileMagic)+1:]
		if len(plain) != keyPlainSize {
			return nil, fmt.Errorf("%w: %d bytes of key, want %d", ErrKeyFile, len(plain), keyPlainSize)
		}
	case kdfScrypt:
		hdrLen := len(keyFileMagic) + 4 + saltSize
		if len(b) != hdrLen+keyPlainSize+chacha20poly1305.Overhead {
			return nil, fmt.Errorf("%w: %d bytes, want %d", ErrKeyFile, len(b), hdrLen+keyPlainSize+chacha20poly1305.Overhead)
		}
		logN, r, p := int(b[len(keyFileMagic)+1]), b[len(keyFileMagic)+2], b[len(keyFileMagic)+3]
		if logN < minScryptLogN || logN > maxScryptLogN || r != scryptR || p != scryptP {
			return nil, fmt.Errorf("%w: unsupported scrypt parameters 2^%d/%d/%d", ErrKeyFile, logN, r, p)
		}
		if passphrase == nil {
			return nil, ErrPassphraseRequired
		}
		pass, err := passphrase()
		if err != nil {
			return nil, err
		}
		aead, err := keyFileAEAD(pass, b[hdrLen-saltSize:hdrLen], logN)
		if err != nil {
			return nil, err
		}
		plain, err = aead.Open(nil, make([]byte, chacha20poly1305.NonceSize), b[hdrLen:], b[:hdrLen])
		if err != nil {
			return nil, ErrWrongPassphrase
		}
	default:
		return nil, fmt.Errorf("%w: unknown protection scheme %d", ErrKeyFile, kdf)
	}
	var seed [SeedSize]byte
	copy(seed[:], plain)
	created := binary.BigEndian.Uint64(plain[SeedSize+1:])
	if created > 1<<62 {
		return nil, fmt.Errorf("%w: creation time out of range", ErrKeyFile)
	}
	return FromSeed(seed, int(plain[SeedSize]), time.Unix(int64(created), 0))
}

// IsProtected reports whether key file bytes need a passphrase.
func IsProtected(b []byte) bool {
	return len(b) > len(keyFileMagic) && b[len(keyFileMagic)] == kdfScrypt
}
