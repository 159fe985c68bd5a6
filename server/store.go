package server

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/flowmail/flowmail/account"
	"github.com/flowmail/flowmail/internal/atomicfile"
)

// Files under a server's data directory (docs/PROTOCOL.md 18.4).
const (
	// AccountKeyFile holds the OPAQUE server keys (account.ServerKeys):
	// with the OPRF seed in it, a stolen accounts directory allows
	// offline guessing, so back it up apart and keep it mode 0600.
	AccountKeyFile = "account.key"
	// AccountsDir holds one file per account, named by the SHA-256 of
	// the account (its address text), holding account.Record.
	AccountsDir = "accounts"
)

// accountStore keeps account records as files.
type accountStore struct{ dir string }

func (s accountStore) path(acct string) string {
	h := sha256.Sum256([]byte(acct))
	return filepath.Join(s.dir, hex.EncodeToString(h[:]))
}

// get returns the record of acct, or nil when there is none.
func (s accountStore) get(acct string) (*account.Record, error) {
	f, err := os.Open(s.path(acct))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, account.MaxRecordSize+1))
	if err != nil {
		return nil, err
	}
	r, err := account.ParseRecord(b)
	if err != nil {
		return nil, fmt.Errorf("server: account file %s: %w", s.path(acct), err)
	}
	return r, nil
}

func (s accountStore) put(acct string, r *account.Record) error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return err
	}
	return atomicfile.Write(s.path(acct), r.Marshal(), 0o600)
}

// LoadOrCreateKeys reads the OPAQUE server keys from dir, creating them
// on first start.
func LoadOrCreateKeys(dir string) (*account.ServerKeys, error) {
	path := filepath.Join(dir, AccountKeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		k, err := account.GenerateServerKeys()
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		if err := atomicfile.Write(path, k.Marshal(), 0o600); err != nil {
			return nil, fmt.Errorf("server: writing %s: %w", path, err)
		}
		return k, nil
	}
	if err != nil {
		return nil, err
	}
	k, err := account.ParseServerKeys(b)
	if err != nil {
		return nil, fmt.Errorf("server: %s: %w", path, err)
	}
	return k, nil
}
