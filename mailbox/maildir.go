package mailbox

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Deliver writes msg into the Maildir at dir by the Maildir
// delivery protocol: a unique name, the file written and synced in tmp/,
// renamed into new/, and new/ synced. It creates dir, tmp, new and cur
// (mode 0700) when missing, and returns the path of the delivered file.
func Deliver(dir string, msg []byte, now time.Time) (string, error) {
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return "", fmt.Errorf("mailbox: maildir: %w", err)
		}
	}
	name, err := maildirName(now)
	if err != nil {
		return "", err
	}
	tmp := filepath.Join(dir, "tmp", name)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("mailbox: maildir: %w", err)
	}
	if _, err = f.Write(msg); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	final := filepath.Join(dir, "new", name)
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("mailbox: maildir: %w", err)
	}
	if err := syncDir(filepath.Join(dir, "new")); err != nil {
		return "", fmt.Errorf("mailbox: maildir: %w", err)
	}
	return final, nil
}

// maildirName is "seconds.M<micros>P<pid>R<random>.<host>": the time and
// process make it readable, 64 random bits make it unique.
func maildirName(now time.Time) (string, error) {
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("mailbox: maildir: %w", err)
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	// '/' and ':' cannot appear in a Maildir name (':' starts the flags).
	host = strings.NewReplacer("/", `\057`, ":", `\072`).Replace(host)
	return fmt.Sprintf("%d.M%06dP%dR%s.%s", now.Unix(), now.Nanosecond()/1000, os.Getpid(), hex.EncodeToString(r[:]), host), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
