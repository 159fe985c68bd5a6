//go:build unix

package mailbox

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockDir takes an exclusive advisory lock on path (created if missing),
// so two fetches for one recipient never deliver the same mail twice.
func lockDir(path string) (unlock func() error, err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("mailbox: state lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("mailbox: %s is held by another process (is a fetch already running?): %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("mailbox: state lock: %w", err)
	}
	return f.Close, nil // closing the file releases the lock
}
