package mailbox

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Maildir is a Maildir directory (new/, cur/ and tmp/ inside Dir) that
// mail is delivered into by the Maildir protocol. Files hold the message
// with the local line ends: each CRLF of the signed RFC 5322 bytes is a
// LF on disk (docs/PROTOCOL.md 9.6).
type Maildir struct {
	Dir string
}

// Delivery is one mail being written into the Maildir's tmp/. Write takes
// the message as signed (CRLF line ends); Commit moves the file into new/,
// Abort removes it. One of the two must be called.
type Delivery struct {
	dir, name, tmp string
	f              *os.File
	w              *bufio.Writer
	cr             bool // the last byte written was a CR, held back
	n              int64
	err            error
}

// Create starts a delivery: it creates the Maildir's directories (mode
// 0700) when missing and a new file in tmp/ under a unique name.
func (m Maildir) Create(now time.Time) (*Delivery, error) {
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(m.Dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("mailbox: maildir: %w", err)
		}
	}
	name, err := maildirName(now)
	if err != nil {
		return nil, err
	}
	tmp := filepath.Join(m.Dir, "tmp", name)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("mailbox: maildir: %w", err)
	}
	return &Delivery{dir: m.Dir, name: name, tmp: tmp, f: f, w: bufio.NewWriterSize(f, 256<<10)}, nil
}

var crlf = []byte("\r\n")

// Write takes message bytes as signed and writes them with every CRLF
// turned into LF; a CR that ends p waits for the next byte.
func (d *Delivery) Write(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	n := len(p)
	if d.cr && len(p) > 0 {
		d.cr = false
		if p[0] != '\n' {
			d.put([]byte{'\r'})
		}
	}
	for len(p) > 0 {
		i := bytes.Index(p, crlf)
		if i < 0 {
			break
		}
		d.put(p[:i])
		d.put([]byte{'\n'})
		p = p[i+2:]
	}
	if len(p) > 0 && p[len(p)-1] == '\r' {
		d.cr, p = true, p[:len(p)-1]
	}
	d.put(p)
	if d.err != nil {
		return 0, d.err
	}
	return n, nil
}

func (d *Delivery) put(b []byte) {
	if d.err == nil && len(b) > 0 {
		var k int
		k, d.err = d.w.Write(b)
		d.n += int64(k)
	}
}

// Size is the bytes written to the file so far.
func (d *Delivery) Size() int64 { return d.n }

// Commit finishes the file (written and synced in tmp/), renames it into
// new/ and syncs new/. It returns the delivered file's path.
func (d *Delivery) Commit() (string, error) {
	if d.cr {
		d.put([]byte{'\r'})
		d.cr = false
	}
	err := d.err
	if err == nil {
		err = d.w.Flush()
	}
	if err == nil {
		err = d.f.Sync()
	}
	if cerr := d.f.Close(); err == nil {
		err = cerr
	}
	d.f = nil
	final := filepath.Join(d.dir, "new", d.name)
	if err == nil {
		err = os.Rename(d.tmp, final)
	}
	d.err = errClosed
	if err != nil {
		os.Remove(d.tmp)
		return "", fmt.Errorf("mailbox: maildir: %w", err)
	}
	if err := syncDir(filepath.Join(d.dir, "new")); err != nil {
		return "", fmt.Errorf("mailbox: maildir: %w", err)
	}
	return final, nil
}

// Abort drops the file. It does nothing after Commit.
func (d *Delivery) Abort() {
	if d.f != nil {
		d.f.Close()
		d.f = nil
		os.Remove(d.tmp)
		d.err = errClosed
	}
}

// Deliver writes msg, the signed bytes of one mail, into the Maildir at
// dir (Create, Write, Commit) and returns the delivered file's path.
func Deliver(dir string, msg []byte, now time.Time) (string, error) {
	d, err := Maildir{Dir: dir}.Create(now)
	if err != nil {
		return "", err
	}
	if _, err := d.Write(msg); err != nil {
		d.Abort()
		return "", fmt.Errorf("mailbox: maildir: %w", err)
	}
	return d.Commit()
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

// ToLF returns msg with each CRLF replaced by LF: the bytes a Maildir
// file holds for a mail signed as msg.
func ToLF(msg []byte) []byte { return bytes.ReplaceAll(msg, crlf, []byte{'\n'}) }

// errClosed reports a write to a finished delivery.
var errClosed = errors.New("mailbox: delivery already finished")
