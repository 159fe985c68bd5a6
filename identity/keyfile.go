package identity

import (
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

	"github.com/flowmail/flowmail/block"
)

// Key file layout (docs/PROTOCOL.md, "Key file"). The file is local, never
// sent, and small enough that a fixed layout read with explicit length
// checks is simpler and stricter than any general codec.
const (
	keyFileMagic   = "flowmail-key v2\n"
	keyFileMagicV1 = "flowmail-key v1\n" // read only: a seed whose next key derives from it

	kdfNone   = 0
	kdfScrypt = 1

	// DefaultScryptLogN costs about 128 MiB and a third of a second here:
	// slow enough to make guessing expensive, fast enough for every start.
	DefaultScryptLogN = 17
	minScryptLogN     = 10
	maxScryptLogN     = 20 // 1 GiB of memory: more would fail on small machines
	scryptR, scryptP  = 8, 1
	saltSize          = 16
	keyHeaderSize     = 16 + 1 + 3 + saltSize // magic, kdf, scrypt parameters, salt

	roleIdentity = 1
	roleNext     = 2
	roleSigning  = 3 // a bare Ed25519 key: a domain's key (signkey.go)

	keyPlainSizeV1   = SeedSize + 1 + 8
	identityBaseSize = 1 + SeedSize + 1 + 8 + block.NextSize + block.IDSize + 1 + 1
	retiredSize      = SeedSize + 8
	nextPlainSize    = 1 + SeedSize + block.IDSize + 1
	maxPlainSize     = identityBaseSize + block.MaxRotations*retiredSize
	maxTime          = 1 << 62 // Unix seconds: far past any real date, safe for time.Unix
)

// Key file errors.
var (
	ErrWrongPassphrase    = errors.New("wrong passphrase (or the key file is damaged)")
	ErrPassphraseRequired = errors.New("this key file is protected by a passphrase")
	ErrKeyFile            = errors.New("not a valid flowmail key file")
	ErrKeyFileRole        = errors.New("key file holds another kind of key")
	ErrKeyFileExists      = errors.New("key file already exists")
	ErrKeyFilePermissions = errors.New("key file is readable by other users")
	ErrNoPassphrase       = errors.New("no passphrase given: choose one, or ask for an unprotected key (KeyFileOptions.NoPassphrase)")
)

// KeyFileOptions says how key files are protected.
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
	return writeFile(path, body, false)
}

// ReplaceKeyFile writes id to path with mode 0600 in place of the file
// there (after a rotation, or to drop retired keys): readers see the old
// file or the new one, never a mix.
func ReplaceKeyFile(path string, id *Identity, opt KeyFileOptions) error {
	body, err := encodeKeyFile(id, opt)
	if err != nil {
		return err
	}
	return writeFile(path, body, true)
}

// WriteNextKeyFile writes a next key to path with mode 0600; an existing
// file is never replaced.
func WriteNextKeyFile(path string, k *NextKey, opt KeyFileOptions) error {
	body, err := seal(encodeNextKey(k), opt)
	if err != nil {
		return err
	}
	return writeFile(path, body, false)
}

// ReplaceNextKeyFile writes a next key in place of the file at path.
func ReplaceNextKeyFile(path string, k *NextKey, opt KeyFileOptions) error {
	body, err := seal(encodeNextKey(k), opt)
	if err != nil {
		return err
	}
	return writeFile(path, body, true)
}

func writeFile(path string, body []byte, replace bool) error {
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
	if replace {
		if err := os.Rename(tmp.Name(), path); err != nil {
			return fmt.Errorf("writing key file: %w", err)
		}
		return syncDir(dir)
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
	plain := make([]byte, 0, identityBaseSize+len(id.retired)*retiredSize)
	plain = append(plain, roleIdentity)
	plain = append(plain, id.seed[:]...)
	plain = append(plain, byte(id.Difficulty()))
	plain = binary.BigEndian.AppendUint64(plain, uint64(id.created.Unix()))
	plain = append(plain, id.public.Next[:]...)
	plain = append(plain, id.address[:]...)
	plain = append(plain, byte(id.generation), byte(len(id.retired)))
	for _, r := range id.retired {
		plain = append(plain, r.seed[:]...)
		plain = binary.BigEndian.AppendUint64(plain, uint64(r.until.Unix()))
	}
	return seal(plain, opt)
}

func encodeNextKey(k *NextKey) []byte {
	plain := make([]byte, 0, nextPlainSize)
	plain = append(plain, roleNext)
	plain = append(plain, k.seed[:]...)
	plain = append(plain, k.address[:]...)
	return append(plain, byte(k.generation))
}

// seal frames plain as a key file, encrypted under the passphrase unless
// the options ask for none.
func seal(plain []byte, opt KeyFileOptions) ([]byte, error) {
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
	b, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	id, err := DecodeKeyFile(b, passphrase)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return id, nil
}

// ReadNextKeyFile loads a next key, as ReadKeyFile loads an identity.
func ReadNextKeyFile(path string, passphrase func() ([]byte, error)) (*NextKey, error) {
	b, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	k, err := DecodeNextKeyFile(b, passphrase)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

func readKeyFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; run: chmod 600 %s", ErrKeyFilePermissions, path, fi.Mode().Perm(), path)
	}
	if fi.Size() > keyHeaderSize+maxPlainSize+chacha20poly1305.Overhead {
		return nil, fmt.Errorf("%w: %s is %d bytes, more than any key file", ErrKeyFile, path, fi.Size())
	}
	return os.ReadFile(path)
}

// open checks the frame of a key file and returns its plaintext and
// whether it has the first layout (a bare seed).
func open(b []byte, passphrase func() ([]byte, error)) (plain []byte, v1 bool, err error) {
	if len(b) < len(keyFileMagic)+1 {
		return nil, false, fmt.Errorf("%w: %d bytes", ErrKeyFile, len(b))
	}
	switch string(b[:len(keyFileMagic)]) {
	case keyFileMagic:
	case keyFileMagicV1:
		v1 = true
	default:
		return nil, false, fmt.Errorf("%w: missing %q header", ErrKeyFile, keyFileMagic[:len(keyFileMagic)-1])
	}
	switch kdf := b[len(keyFileMagic)]; kdf {
	case kdfNone:
		plain = b[len(keyFileMagic)+1:]
	case kdfScrypt:
		if len(b) < keyHeaderSize+chacha20poly1305.Overhead {
			return nil, false, fmt.Errorf("%w: %d bytes, a protected key file has at least %d", ErrKeyFile, len(b), keyHeaderSize+chacha20poly1305.Overhead)
		}
		if len(b) > keyHeaderSize+maxPlainSize+chacha20poly1305.Overhead {
			return nil, false, fmt.Errorf("%w: %d bytes, more than any key file", ErrKeyFile, len(b))
		}
		if n := len(b) - keyHeaderSize - chacha20poly1305.Overhead; !plainSizeValid(n, v1) {
			return nil, false, fmt.Errorf("%w: %d bytes of sealed key, which no key layout has", ErrKeyFile, n)
		}
		logN, r, p := int(b[len(keyFileMagic)+1]), b[len(keyFileMagic)+2], b[len(keyFileMagic)+3]
		if logN < minScryptLogN || logN > maxScryptLogN || r != scryptR || p != scryptP {
			return nil, false, fmt.Errorf("%w: unsupported scrypt parameters 2^%d/%d/%d", ErrKeyFile, logN, r, p)
		}
		if passphrase == nil {
			return nil, false, ErrPassphraseRequired
		}
		pass, err := passphrase()
		if err != nil {
			return nil, false, err
		}
		aead, err := keyFileAEAD(pass, b[keyHeaderSize-saltSize:keyHeaderSize], logN)
		if err != nil {
			return nil, false, err
		}
		plain, err = aead.Open(nil, make([]byte, chacha20poly1305.NonceSize), b[keyHeaderSize:], b[:keyHeaderSize])
		if err != nil {
			return nil, false, ErrWrongPassphrase
		}
	default:
		return nil, false, fmt.Errorf("%w: unknown protection scheme %d", ErrKeyFile, kdf)
	}
	return plain, v1, nil
}

// plainSizeValid reports whether n bytes can be the plaintext of a key
// file, so a cut or padded file is called damaged before a passphrase is
// stretched for it.
func plainSizeValid(n int, v1 bool) bool {
	if v1 {
		return n == keyPlainSizeV1
	}
	return n == nextPlainSize || n == signingPlainSize || n >= identityBaseSize && n <= maxPlainSize && (n-identityBaseSize)%retiredSize == 0
}

// DecodeKeyFile parses the bytes of an identity's key file.
func DecodeKeyFile(b []byte, passphrase func() ([]byte, error)) (*Identity, error) {
	plain, v1, err := open(b, passphrase)
	if err != nil {
		return nil, err
	}
	if v1 {
		return decodeV1(plain)
	}
	if len(plain) == 0 || plain[0] != roleIdentity {
		if len(plain) > 0 && plain[0] == roleNext {
			return nil, fmt.Errorf("%w: this is a next key file, not an identity", ErrKeyFileRole)
		}
		if len(plain) > 0 && plain[0] == roleSigning {
			return nil, fmt.Errorf("%w: this is a signing key file (a domain's key), not an identity", ErrKeyFileRole)
		}
		return nil, fmt.Errorf("%w: unknown key role", ErrKeyFile)
	}
	if len(plain) < identityBaseSize {
		return nil, fmt.Errorf("%w: %d bytes of identity, want at least %d", ErrKeyFile, len(plain), identityBaseSize)
	}
	r := plain[1:]
	seed := [SeedSize]byte(r)
	difficulty := int(r[SeedSize])
	r = r[SeedSize+1:]
	created := binary.BigEndian.Uint64(r)
	r = r[8:]
	next := [block.NextSize]byte(r)
	r = r[block.NextSize:]
	address := block.ID(r)
	r = r[block.IDSize:]
	generation, count := int(r[0]), int(r[1])
	r = r[2:]
	if created > maxTime {
		return nil, fmt.Errorf("%w: creation time out of range", ErrKeyFile)
	}
	if generation > block.MaxRotations || count > generation {
		return nil, fmt.Errorf("%w: generation %d with %d retired keys (at most %d, and no more retired keys than rotations)", ErrKeyFile, generation, count, block.MaxRotations)
	}
	if len(r) != count*retiredSize {
		return nil, fmt.Errorf("%w: %d bytes of retired keys, want %d", ErrKeyFile, len(r), count*retiredSize)
	}
	id, err := buildGeneration(seed, difficulty, time.Unix(int64(created), 0), next)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	if generation == 0 && address != id.public.ID {
		return nil, fmt.Errorf("%w: generation 0 whose address is not its pubkey block's ID", ErrKeyFile)
	}
	id.address, id.generation = address, generation
	id.public.Owner = address
	for range count {
		rk := retiredKey{seed: [SeedSize]byte(r)}
		until := binary.BigEndian.Uint64(r[SeedSize:])
		if until > maxTime {
			return nil, fmt.Errorf("%w: retired key's grace end out of range", ErrKeyFile)
		}
		rk.until = time.Unix(int64(until), 0)
		if rk.enc, err = deriveEncKey(rk.seed); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
		}
		id.retired = append(id.retired, rk)
		r = r[retiredSize:]
	}
	return id, nil
}

func decodeV1(plain []byte) (*Identity, error) {
	if len(plain) != keyPlainSizeV1 {
		return nil, fmt.Errorf("%w: %d bytes of key, want %d", ErrKeyFile, len(plain), keyPlainSizeV1)
	}
	created := binary.BigEndian.Uint64(plain[SeedSize+1:])
	if created > maxTime {
		return nil, fmt.Errorf("%w: creation time out of range", ErrKeyFile)
	}
	id, err := FromSeed([SeedSize]byte(plain), int(plain[SeedSize]), time.Unix(int64(created), 0))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	return id, nil
}

// DecodeNextKeyFile parses the bytes of a next key file.
func DecodeNextKeyFile(b []byte, passphrase func() ([]byte, error)) (*NextKey, error) {
	plain, v1, err := open(b, passphrase)
	if err != nil {
		return nil, err
	}
	switch {
	case v1 || len(plain) > 0 && plain[0] == roleIdentity:
		return nil, fmt.Errorf("%w: this is an identity's key file, not a next key", ErrKeyFileRole)
	case len(plain) > 0 && plain[0] == roleSigning:
		return nil, fmt.Errorf("%w: this is a signing key file (a domain's key), not a next key", ErrKeyFileRole)
	case len(plain) == 0 || plain[0] != roleNext:
		return nil, fmt.Errorf("%w: unknown key role", ErrKeyFile)
	}
	if len(plain) != nextPlainSize {
		return nil, fmt.Errorf("%w: %d bytes of next key, want %d", ErrKeyFile, len(plain), nextPlainSize)
	}
	generation := int(plain[nextPlainSize-1])
	if generation < 1 || generation > block.MaxRotations+1 {
		return nil, fmt.Errorf("%w: next key for generation %d, want 1 to %d", ErrKeyFile, generation, block.MaxRotations+1)
	}
	return newNextKey([SeedSize]byte(plain[1:]), block.ID(plain[1+SeedSize:]), generation), nil
}

// IsProtected reports whether key file bytes need a passphrase.
func IsProtected(b []byte) bool {
	return len(b) > len(keyFileMagic) && b[len(keyFileMagic)] == kdfScrypt
}
