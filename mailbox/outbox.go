package mailbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Outbox holds messages on their way out, one file each, so that a send
// that was interrupted finds its message again, byte for byte, and the
// state of its send beside it (docs/PROTOCOL.md 10.2). Names are the
// caller's keys: lower-case hex.
type Outbox struct {
	Dir string
}

// ErrOutboxKey refuses a key that is not lower-case hex.
var ErrOutboxKey = errors.New("mailbox: outbox key must be lower-case hex")

func checkKey(key string) error {
	if key == "" || strings.Trim(key, "0123456789abcdef") != "" {
		return fmt.Errorf("%w: %q", ErrOutboxKey, key)
	}
	return nil
}

// Message is the path of the message filed under key.
func (o Outbox) Message(key string) string { return filepath.Join(o.Dir, key+".eml") }

// State is the path of a state file of the message under key; part
// tells the states of one message apart (one per copy sent, say).
func (o Outbox) State(key, part string) string {
	return filepath.Join(o.Dir, key+"."+part+".state")
}

// Add files the message write produces under key, written in full and
// synced before it appears under its name, unless a message is filed
// under key already (a send that did not finish). It reports which.
func (o Outbox) Add(key string, write func(io.Writer) error) (existed bool, err error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	path := o.Message(key)
	if _, err := os.Stat(path); err == nil {
		return true, nil
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return false, fmt.Errorf("mailbox: outbox: %w", err)
	}
	f, err := os.CreateTemp(o.Dir, key+".*.tmp")
	if err != nil {
		return false, fmt.Errorf("mailbox: outbox: %w", err)
	}
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return false, fmt.Errorf("mailbox: outbox: %w", err)
	}
	if err := syncDir(o.Dir); err != nil {
		return false, fmt.Errorf("mailbox: outbox: %w", err)
	}
	return false, nil
}

// Remove drops the message under key and its state files.
func (o Outbox) Remove(key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	states, err := filepath.Glob(filepath.Join(o.Dir, key+".*.state"))
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range append(states, o.Message(key)) {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
