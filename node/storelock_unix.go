//go:build unix

package node

import (
	"errors"
	"os"
	"syscall"
)

// storeLocked reports whether another process holds the flock Badger
// takes on its directory: the one reliable sign that a second node was
// started on the same data directory (Badger's own error says so only
// in its text).
func storeLocked(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if err == nil {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return false
	}
	return errors.Is(err, syscall.EWOULDBLOCK)
}
