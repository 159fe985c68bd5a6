package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/flowmail/flowmail/internal/atomicfile"
)

// The outbound retry queue survives a restart (docs/PROTOCOL.md 20.5): for
// each spooled mail that failed for now, how often it was tried, when it
// is due again, and which of its relay recipients have it already. It
// lives in one file in the spool, replaced whole (atomicfile) after each
// change, so a crash leaves the old queue or the new one.

// RetryFile is the retry queue's file in the spool directory.
const RetryFile = "retries"

// ErrRetryState: the retry queue's file does not parse. The gateway does
// not start on it; see Start.
var ErrRetryState = errors.New("gateway: damaged retry state")

const (
	retryMagic = "flowmail-gateway-retries 1"
	// maxSpoolName bounds a spool file's name (a Maildir name).
	maxSpoolName = 255
	// maxNext bounds a due time: the end of year 9999, Unix seconds.
	maxNext = 253402300799
	// maxRetryLine is the longest line: name, attempts (one digit),
	// next (12 digits), done (16 hex), three spaces and the newline.
	maxRetryLine = maxSpoolName + 1 + 1 + 1 + 12 + 1 + 16 + 1
	// maxRetryFile bounds the file before it is read.
	maxRetryFile = len(retryMagic) + 1 + MaxDeferred*maxRetryLine
)

// retry is a spooled mail that failed for now.
type retry struct {
	attempts int       // tries so far, 1 to MaxRelayAttempts-1
	next     time.Time // not tried again before, whole seconds
	done     uint64    // bit i: the mail's i-th relay recipient has it
}

// encodeRetries writes the queue (keyed by spool file name) as the file
// holds it: the magic line, then one line per mail in ascending name
// order, "<name> <attempts> <next, Unix seconds> <done, 16 hex>".
func encodeRetries(q map[string]*retry) []byte {
	names := make([]string, 0, len(q))
	for n := range q {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	b.WriteString(retryMagic + "\n")
	for _, n := range names {
		r := q[n]
		fmt.Fprintf(&b, "%s %d %d %016x\n", n, r.attempts, r.next.Unix(), r.done)
	}
	return b.Bytes()
}

// decodeRetries reads exactly what encodeRetries writes; anything else is
// ErrRetryState with the line it stopped at.
func decodeRetries(b []byte) (map[string]*retry, error) {
	if len(b) > maxRetryFile {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrRetryState, len(b), maxRetryFile)
	}
	rest, ok := bytes.CutPrefix(b, []byte(retryMagic+"\n"))
	if !ok {
		return nil, fmt.Errorf("%w: the first line is not %q", ErrRetryState, retryMagic)
	}
	q := map[string]*retry{}
	last := ""
	for line := 2; len(rest) > 0; line++ {
		l, after, ok := bytes.Cut(rest, []byte("\n"))
		if !ok {
			return nil, fmt.Errorf("%w: line %d has no end", ErrRetryState, line)
		}
		rest = after
		if len(q) == MaxDeferred {
			return nil, fmt.Errorf("%w: more than %d mails", ErrRetryState, MaxDeferred)
		}
		f := bytes.Split(l, []byte(" "))
		if len(f) != 4 {
			return nil, fmt.Errorf("%w: line %d: %d fields, want 4", ErrRetryState, line, len(f))
		}
		name := string(f[0])
		if err := checkSpoolName(name); err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrRetryState, line, err)
		}
		if name <= last {
			return nil, fmt.Errorf("%w: line %d: names out of order or repeated", ErrRetryState, line)
		}
		last = name
		attempts, err := canonicalUint(f[1], MaxRelayAttempts-1)
		if err != nil || attempts == 0 {
			return nil, fmt.Errorf("%w: line %d: attempts %q, want 1 to %d", ErrRetryState, line, f[1], MaxRelayAttempts-1)
		}
		next, err := canonicalUint(f[2], maxNext)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: due time %q", ErrRetryState, line, f[2])
		}
		done, err := strconv.ParseUint(string(f[3]), 16, 64)
		if len(f[3]) != 16 || err != nil || fmt.Sprintf("%016x", done) != string(f[3]) {
			return nil, fmt.Errorf("%w: line %d: done %q, want 16 lower-case hex digits", ErrRetryState, line, f[3])
		}
		q[name] = &retry{attempts: int(attempts), next: time.Unix(int64(next), 0), done: done}
	}
	return q, nil
}

// canonicalUint parses a decimal without sign or leading zeros, at most
// limit.
func canonicalUint(b []byte, limit uint64) (uint64, error) {
	if len(b) == 0 || len(b) > 1 && b[0] == '0' || len(b) > 20 {
		return 0, errors.New("not a canonical number")
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errors.New("not a canonical number")
		}
	}
	v, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil || v > limit {
		return 0, errors.New("out of range")
	}
	return v, nil
}

// checkSpoolName accepts the names the spool's files can have: 1 to
// maxSpoolName printable ASCII bytes without space or slash, not hidden.
func checkSpoolName(name string) error {
	if len(name) == 0 || len(name) > maxSpoolName || name[0] == '.' {
		return fmt.Errorf("spool name of %d bytes", len(name))
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c > '~' || c == '/' {
			return fmt.Errorf("spool name %q", name)
		}
	}
	return nil
}

func (g *Gateway) retryPath() string { return filepath.Join(g.cfg.Spool, RetryFile) }

// loadRetries reads the retry queue at start, forgetting mails no longer
// spooled (a crash after a mail was finished and before the queue was
// written again).
func (g *Gateway) loadRetries() error {
	b, err := atomicfile.ReadBounded(g.retryPath(), int64(maxRetryFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case errors.Is(err, atomicfile.ErrTooLarge):
		err = fmt.Errorf("%w: %w", ErrRetryState, err)
	}
	if err == nil {
		g.retries, err = decodeRetries(b)
	}
	if err != nil {
		return fmt.Errorf("%w (%s; moving it away retries every spooled mail from its first attempt, so recipients that have a mail already may get it twice)", err, g.retryPath())
	}
	gone := false
	for name := range g.retries {
		if _, err := os.Stat(filepath.Join(g.maildir(), "new", name)); errors.Is(err, fs.ErrNotExist) {
			delete(g.retries, name)
			gone = true
		}
	}
	if gone {
		return g.saveRetries()
	}
	return nil
}

// saveRetries replaces the file with the queue as it is.
func (g *Gateway) saveRetries() error {
	if err := atomicfile.Write(g.retryPath(), encodeRetries(g.retries), 0o600); err != nil {
		return fmt.Errorf("gateway: saving the retry queue: %w", err)
	}
	return nil
}
