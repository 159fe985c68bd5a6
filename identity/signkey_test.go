package identity

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/flowmail/flowmail/internal/vectors"
)

// TestSigningKeyFileRoundTrip writes a domain's key under a passphrase and
// reads it back: mode 0600, the same key, the passphrase required, a file
// of another role refused, an existing file never replaced.
func TestSigningKeyFileRoundTrip(t *testing.T) {
	k := ed25519.NewKeyFromSeed(vectors.Pattern(ed25519.SeedSize, 0x31))
	path := filepath.Join(t.TempDir(), "example.com.key")
	opt := KeyFileOptions{Passphrase: []byte("correct horse"), ScryptLogN: minScryptLogN}
	if err := WriteSigningKeyFile(path, k, opt); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %04o, want 0600", fi.Mode().Perm())
	}
	got, err := ReadSigningKeyFile(path, func() ([]byte, error) { return []byte("correct horse"), nil })
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(k) {
		t.Fatal("read back another key")
	}
	if _, err := ReadSigningKeyFile(path, func() ([]byte, error) { return []byte("wrong"), nil }); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if _, err := ReadSigningKeyFile(path, nil); !errors.Is(err, ErrPassphraseRequired) {
		t.Fatalf("no passphrase: %v", err)
	}
	if _, err := ReadKeyFile(path, func() ([]byte, error) { return []byte("correct horse"), nil }); !errors.Is(err, ErrKeyFileRole) {
		t.Fatalf("read as an identity: %v", err)
	}
	if err := WriteSigningKeyFile(path, k, opt); !errors.Is(err, ErrKeyFileExists) {
		t.Fatalf("second write: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSigningKeyFile(path, nil); !errors.Is(err, ErrKeyFilePermissions) {
		t.Fatalf("world-readable file: %v", err)
	}
}

func FuzzDecodeSigningKeyFile(f *testing.F) {
	addKeyFileVectors(f)
	errNoPass := errors.New("no passphrase in fuzzing")
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := DecodeSigningKeyFile(b, func() ([]byte, error) { return nil, errNoPass })
		if err != nil {
			return
		}
		again, err := seal(append([]byte{roleSigning}, k.Seed()...), KeyFileOptions{NoPassphrase: true})
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("unprotected signing key file does not re-encode to the same bytes")
		}
	})
}
