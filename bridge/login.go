package bridge

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/atomicfile"
	"github.com/flowmail/flowmail/mail"
)

// LoginFile is the file in the bridge's directory that holds the hash of
// the mail-client password (docs/PROTOCOL.md 16.6).
const LoginFile = "login"

// LabelPassword is the signature label the password is derived under.
const LabelPassword = "flowmail/v1 bridge password"

// Errors of logging in.
var (
	ErrNoLogin    = errors.New("bridge: no password set (run `flowmail bridge password`)")
	ErrLoginFile  = errors.New("bridge: damaged login file")
	ErrBadLogin   = errors.New("bridge: wrong user name or password")
	ErrRateLimits = errors.New("bridge: too many wrong passwords")
)

// Argon2Params are the costs of the password hash. The spec's defaults
// (64 MiB, 3 passes, 4 lanes) are DefaultArgon2; tests may lower them.
type Argon2Params struct {
	MemoryKiB uint32
	Passes    uint32
	Lanes     uint8
}

// DefaultArgon2 is what new login files use (DESIGN: Argon2id 64 MiB,
// 3 passes, 4 lanes).
var DefaultArgon2 = Argon2Params{MemoryKiB: 64 << 10, Passes: 3, Lanes: 4}

// loginFile is what LoginFile holds.
type loginFile struct {
	Generation uint32 // which password of the identity: --reset adds one
	Params     Argon2Params
	Salt       [16]byte
	Hash       [32]byte
}

const loginMagic = "flowmail-bridge-login 1"

func (l *loginFile) encode() []byte {
	return fmt.Appendf(nil, "%s\ngeneration %d\nargon2id %d %d %d %x %x\n", loginMagic, l.Generation,
		l.Params.MemoryKiB, l.Params.Passes, l.Params.Lanes, l.Salt[:], l.Hash[:])
}

// decodeLoginFile parses exactly what encode writes, with costs inside
// bounds a machine can pay (at most 4 GiB, 64 passes).
func decodeLoginFile(b []byte) (*loginFile, error) {
	l := &loginFile{}
	if len(b) > 512 {
		return nil, fmt.Errorf("%w: %d bytes", ErrLoginFile, len(b))
	}
	var memory, passes, lanes uint64
	var salt, hash string
	n, err := fmt.Sscanf(string(b), loginMagic+"\ngeneration %d\nargon2id %d %d %d %s %s\n", &l.Generation, &memory, &passes, &lanes, &salt, &hash)
	if err != nil || n != 6 {
		return nil, fmt.Errorf("%w: %v", ErrLoginFile, err)
	}
	if memory < 8 || memory > 4<<20 || passes < 1 || passes > 64 || lanes < 1 || lanes > 64 || memory < 8*lanes {
		return nil, fmt.Errorf("%w: Argon2id costs %d KiB, %d passes, %d lanes out of bounds", ErrLoginFile, memory, passes, lanes)
	}
	l.Params = Argon2Params{MemoryKiB: uint32(memory), Passes: uint32(passes), Lanes: uint8(lanes)}
	if len(salt) != 32 || len(hash) != 64 {
		return nil, fmt.Errorf("%w: salt or hash length", ErrLoginFile)
	}
	if _, err := hex.Decode(l.Salt[:], []byte(salt)); err != nil {
		return nil, fmt.Errorf("%w: salt: %v", ErrLoginFile, err)
	}
	if _, err := hex.Decode(l.Hash[:], []byte(hash)); err != nil {
		return nil, fmt.Errorf("%w: hash: %v", ErrLoginFile, err)
	}
	if !bytes.Equal(l.encode(), b) { // one encoding per content
		return nil, fmt.Errorf("%w: not in canonical form", ErrLoginFile)
	}
	return l, nil
}

// Password derives the mail-client password of an identity: generation
// picks which (a reset moves to the next). It is a deterministic Ed25519
// signature, hashed and written in base32, so `flowmail bridge password`
// can show it again while only its Argon2id hash is stored.
func Password(id *identity.Identity, generation uint32) string {
	var g [4]byte
	binary.BigEndian.PutUint32(g[:], generation)
	sig := id.Sign(LabelPassword, g[:])
	h := block.LabeledHash(LabelPassword, sig[:])
	return strings.ToLower(base32.StdEncoding.EncodeToString(h[:15])) // 24 characters, 120 bits
}

// UserName is the login name clients use: the address.
func UserName(id *identity.Identity) string { return id.Address() }

// matchUser accepts the address, bare or at flowmail.invalid, in any case.
func matchUser(id *identity.Identity, user string) bool {
	user = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(user)), "@"+mail.MailDomain)
	return user == strings.ToLower(id.Address())
}

// SetPassword writes the login file for the identity's password of the
// given generation, hashed with params, and returns the password.
func SetPassword(dir string, id *identity.Identity, generation uint32, params Argon2Params) (string, error) {
	pw := Password(id, generation)
	l := &loginFile{Generation: generation, Params: params}
	if _, err := rand.Read(l.Salt[:]); err != nil {
		return "", err
	}
	copy(l.Hash[:], argon2.IDKey([]byte(pw), l.Salt[:], params.Passes, params.MemoryKiB, params.Lanes, 32))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("bridge: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, LoginFile), l.encode(), 0o600); err != nil {
		return "", fmt.Errorf("bridge: writing the login file: %w", err)
	}
	return pw, nil
}

// ShowPassword returns the identity's current password, making the login
// file (generation 0) when there is none; with reset it moves to the next
// generation, so the old password stops working.
func ShowPassword(dir string, id *identity.Identity, reset bool, params Argon2Params) (string, error) {
	l, err := readLogin(dir)
	switch {
	case errors.Is(err, ErrNoLogin):
		return SetPassword(dir, id, 0, params)
	case err != nil && !reset:
		return "", err
	case reset:
		gen := uint32(0)
		if l != nil {
			gen = l.Generation + 1
		}
		return SetPassword(dir, id, gen, params)
	}
	return Password(id, l.Generation), nil
}

func readLogin(dir string) (*loginFile, error) {
	path := filepath.Join(dir, LoginFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoLogin
	}
	if err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	l, err := decodeLoginFile(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (make a new one with `flowmail bridge password --reset`)", path, err)
	}
	return l, nil
}

// checker checks passwords against the login file. It remembers a hash of
// the last password that checked out, so a client opening many
// connections pays Argon2id once; the file is read again when it changes
// (a reset while the bridge runs).
type checker struct {
	dir string
	id  *identity.Identity

	mu      sync.Mutex
	version string   // the login file's mod time and size when last read
	good    [32]byte // SHA-256 of the password that last checked out
	hasGood bool
}

func (c *checker) check(user, password string) error {
	if !matchUser(c.id, user) {
		return fmt.Errorf("%w: the user name is your address, %s", ErrBadLogin, c.id.Address())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	fi, err := os.Stat(filepath.Join(c.dir, LoginFile))
	if err != nil {
		return ErrNoLogin
	}
	version := fi.ModTime().String() + strconv.FormatInt(fi.Size(), 10)
	if version != c.version {
		c.hasGood, c.version = false, version
	}
	sum := sha256.Sum256([]byte(password))
	if c.hasGood && subtle.ConstantTimeCompare(sum[:], c.good[:]) == 1 {
		return nil
	}
	l, err := readLogin(c.dir)
	if err != nil {
		return err
	}
	got := argon2.IDKey([]byte(password), l.Salt[:], l.Params.Passes, l.Params.MemoryKiB, l.Params.Lanes, 32)
	if subtle.ConstantTimeCompare(got, l.Hash[:]) != 1 {
		return ErrBadLogin
	}
	c.good, c.hasGood = sum, true
	return nil
}
