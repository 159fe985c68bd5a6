//go:build unix

package blockstore

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// probeLock tells whether another process holds the Badger directory
// lock on dir (an flock on the directory itself): Badger reports that
// only as text, this gives it a type. It takes and at once releases the
// lock; a directory that does not exist yet is free.
func probeLock(dir string) error {
	f, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return nil // Badger's own open reports it
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return fmt.Errorf("%w: %s", ErrLocked, dir)
	}
	if err == nil {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	}
	return nil
}
