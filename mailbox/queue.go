package mailbox

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/internal/atomicfile"
)

// ErrQueueEntry reports an outbox entry or state file that does not parse.
var ErrQueueEntry = errors.New("mailbox: damaged outbox entry")

// Limits of an outbox entry (docs/PROTOCOL.md 16.5).
const (
	MaxQueueRecipients = 256      // addresses in one entry, To/Cc and Bcc together
	maxQueueHeader     = 32 << 10 // bytes before the message
	maxQueueState      = 4 << 10
	maxQueueError      = 300 // bytes of the last error kept
)

// Submission is one mail accepted for sending: the message and whom it
// goes to. Part 0 is the mail to To (all visible recipients), part i the
// blind copy to Bcc[i-1], each a mail of its own (spec 9.2).
type Submission struct {
	ID       string    // the entry's name: "<unix seconds>-<16 hex>"
	Accepted time.Time // also the signing time of its mails
	// Seed makes the randomness of each mail built from the entry, so a
	// mail built again after a crash is the same mail (same message ID):
	// its recipients deliver it once.
	Seed [32]byte
	To   []block.ID
	Bcc  []block.ID
	Size int64 // of the message, bytes
}

// Parts is how many mails the submission makes.
func (s *Submission) Parts() int { return 1 + len(s.Bcc) }

// QueueState is how far the sending of a submission got.
type QueueState struct {
	Done     []bool    // by part
	Attempts int       // failed tries so far
	Next     time.Time // not to be tried before
	Err      string    // the last failure
}

// Queue is the outbox of the bridge (docs/PROTOCOL.md 16.5): mail that
// was accepted and is not yet sent, one file per submission, written in
// full and synced before it appears under its name, so an accepted mail
// survives a crash; beside it a state file saying which parts went out.
type Queue struct {
	dir string
}

// OpenQueue opens (creating, mode 0700) the outbox directory.
func OpenQueue(dir string) (*Queue, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mailbox: outbox: %w", err)
	}
	return &Queue{dir: dir}, nil
}

const (
	queueMagic      = "flowmail-outbox 1"
	queueStateMagic = "flowmail-outbox-state 1"
	queueSuffix     = ".mail"
	stateSuffix     = ".state"
	sendStateSuffix = ".send"
)

// Add files a submission: the message read from r (at most limit bytes,
// else ErrTooBig), with sub's recipients. It fills in ID, Accepted (from
// now), Seed and Size, and returns once the entry is on disk. A reader
// that fails leaves nothing.
func (q *Queue) Add(r io.Reader, limit int64, sub Submission, now time.Time) (Submission, error) {
	if len(sub.To)+len(sub.Bcc) == 0 || len(sub.To)+len(sub.Bcc) > MaxQueueRecipients {
		return sub, fmt.Errorf("%w: %d recipients, want 1 to %d", ErrQueueEntry, len(sub.To)+len(sub.Bcc), MaxQueueRecipients)
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return sub, err
	}
	if _, err := rand.Read(sub.Seed[:]); err != nil {
		return sub, err
	}
	sub.Accepted = time.Unix(now.Unix(), 0)
	sub.ID = fmt.Sprintf("%d-%s", sub.Accepted.Unix(), hex.EncodeToString(rnd[:]))
	f, err := os.CreateTemp(q.dir, ".add-*")
	if err != nil {
		return sub, fmt.Errorf("mailbox: outbox: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	hdr := sub.encodeHeader()
	bw := bufio.NewWriterSize(f, 64<<10)
	bw.Write(hdr)
	n, err := io.Copy(bw, io.LimitReader(r, limit+1))
	if err != nil {
		return sub, fmt.Errorf("mailbox: outbox: %w", err)
	}
	if n > limit {
		return sub, fmt.Errorf("%w: over %d bytes", ErrTooBig, limit)
	}
	sub.Size = n
	if err := bw.Flush(); err != nil {
		return sub, fmt.Errorf("mailbox: outbox: %w", err)
	}
	if err := f.Sync(); err != nil {
		return sub, fmt.Errorf("mailbox: outbox: %w", err)
	}
	if err := f.Close(); err != nil {
		return sub, fmt.Errorf("mailbox: outbox: %w", err)
	}
	ok = true
	if err := os.Rename(f.Name(), filepath.Join(q.dir, sub.ID+queueSuffix)); err != nil {
		os.Remove(f.Name())
		return sub, fmt.Errorf("mailbox: outbox: %w", err)
	}
	if err := syncDir(q.dir); err != nil {
		return sub, fmt.Errorf("mailbox: outbox: %w", err)
	}
	return sub, nil
}

// List returns the IDs of the queued submissions, oldest first.
func (q *Queue) List() ([]string, error) {
	names, err := readNames(q.dir)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, n := range names {
		if id, ok := strings.CutSuffix(n, queueSuffix); ok && checkQueueID(id) == nil {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool {
		if len(ids[i]) != len(ids[j]) {
			return len(ids[i]) < len(ids[j])
		}
		return ids[i] < ids[j]
	})
	return ids, nil
}

func checkQueueID(id string) error {
	t, r, ok := strings.Cut(id, "-")
	if !ok || len(r) != 16 || strings.Trim(r, "0123456789abcdef") != "" || t == "" || strings.Trim(t, "0123456789") != "" || len(t) > 19 {
		return fmt.Errorf("%w: %q is not an outbox ID", ErrQueueEntry, id)
	}
	return nil
}

// Open returns a submission and a reader of its message. The caller
// closes the reader.
func (q *Queue) Open(id string) (Submission, io.ReadCloser, error) {
	if err := checkQueueID(id); err != nil {
		return Submission{}, nil, err
	}
	f, err := os.Open(filepath.Join(q.dir, id+queueSuffix))
	if err != nil {
		return Submission{}, nil, fmt.Errorf("mailbox: outbox: %w", err)
	}
	br := bufio.NewReaderSize(f, 64<<10)
	hdr, err := readQueueHeader(br)
	if err == nil {
		var sub Submission
		if sub, err = decodeQueueHeader(hdr); err == nil {
			fi, serr := f.Stat()
			if serr != nil {
				err = serr
			} else {
				sub.ID, sub.Size = id, fi.Size()-int64(len(hdr))
				return sub, readCloser{br, f}, nil
			}
		}
	}
	f.Close()
	return Submission{}, nil, fmt.Errorf("mailbox: outbox entry %s: %w", id, err)
}

type readCloser struct {
	io.Reader
	io.Closer
}

// readQueueHeader reads up to and including the empty line that ends the
// header, at most maxQueueHeader bytes.
func readQueueHeader(br *bufio.Reader) ([]byte, error) {
	var hdr []byte
	for {
		line, err := br.ReadSlice('\n')
		hdr = append(hdr, line...)
		if len(hdr) > maxQueueHeader {
			return nil, fmt.Errorf("%w: header over %d bytes", ErrQueueEntry, maxQueueHeader)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w: header cut short: %v", ErrQueueEntry, err)
		}
		if len(line) == 1 {
			return hdr, nil
		}
	}
}

// encodeHeader is the entry's header: the magic, "accepted <unix>",
// "seed <64 hex>", "to <64 hex>" and "bcc <64 hex>" lines, an empty line.
func (s *Submission) encodeHeader() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\naccepted %d\nseed %x\n", queueMagic, s.Accepted.Unix(), s.Seed[:])
	for _, id := range s.To {
		fmt.Fprintf(&b, "to %x\n", id[:])
	}
	for _, id := range s.Bcc {
		fmt.Fprintf(&b, "bcc %x\n", id[:])
	}
	b.WriteByte('\n')
	return b.Bytes()
}

// decodeQueueHeader parses a header as encodeHeader writes it: lines in
// that order, canonical numbers and lower-case hex, at least one and at
// most MaxQueueRecipients recipients, none twice.
func decodeQueueHeader(b []byte) (Submission, error) {
	var s Submission
	if len(b) > maxQueueHeader || !bytes.HasSuffix(b, []byte("\n\n")) {
		return s, fmt.Errorf("%w: header not ending in an empty line, or over %d bytes", ErrQueueEntry, maxQueueHeader)
	}
	lines := strings.Split(string(b[:len(b)-2]), "\n")
	if len(lines) < 3 || lines[0] != queueMagic {
		return s, fmt.Errorf("%w: want %q, accepted and seed lines", ErrQueueEntry, queueMagic)
	}
	v, ok := strings.CutPrefix(lines[1], "accepted ")
	t, err := strconv.ParseInt(v, 10, 64)
	if !ok || err != nil || t <= 0 || strconv.FormatInt(t, 10) != v {
		return s, fmt.Errorf("%w: %q", ErrQueueEntry, lines[1])
	}
	s.Accepted = time.Unix(t, 0)
	v, ok = strings.CutPrefix(lines[2], "seed ")
	if !ok || len(v) != 64 || strings.ToLower(v) != v {
		return s, fmt.Errorf("%w: %q", ErrQueueEntry, lines[2])
	}
	if _, err := hex.Decode(s.Seed[:], []byte(v)); err != nil {
		return s, fmt.Errorf("%w: seed: %v", ErrQueueEntry, err)
	}
	seen := map[block.ID]bool{}
	for _, line := range lines[3:] {
		kind, v, _ := strings.Cut(line, " ")
		if kind != "to" && kind != "bcc" || kind == "to" && len(s.Bcc) > 0 {
			return s, fmt.Errorf("%w: line %q (to lines, then bcc lines)", ErrQueueEntry, line)
		}
		id, err := block.ParseHexID(v)
		if err != nil || id.String() != v {
			return s, fmt.Errorf("%w: address %q", ErrQueueEntry, v)
		}
		if seen[id] {
			return s, fmt.Errorf("%w: %s listed twice", ErrQueueEntry, v)
		}
		seen[id] = true
		if kind == "to" {
			s.To = append(s.To, id)
		} else {
			s.Bcc = append(s.Bcc, id)
		}
	}
	if n := len(s.To) + len(s.Bcc); n == 0 || n > MaxQueueRecipients {
		return s, fmt.Errorf("%w: %d recipients, want 1 to %d", ErrQueueEntry, n, MaxQueueRecipients)
	}
	return s, nil
}

// State returns how far the submission got; a submission never tried
// has no state file and a zero state with one Done slot per part.
func (q *Queue) State(sub Submission) (QueueState, error) {
	st := QueueState{Done: make([]bool, sub.Parts())}
	b, err := atomicfile.ReadBounded(filepath.Join(q.dir, sub.ID+stateSuffix), maxQueueState)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("mailbox: outbox: %w", err)
	}
	return decodeQueueState(b, sub.Parts())
}

// SaveState records how far the submission got (atomically).
func (q *Queue) SaveState(sub Submission, st QueueState) error {
	if err := atomicfile.Write(filepath.Join(q.dir, sub.ID+stateSuffix), st.encode(), 0o600); err != nil {
		return fmt.Errorf("mailbox: outbox: %w", err)
	}
	return nil
}

// SendState is the path of the send state (docs/PROTOCOL.md 10.2) of
// part of the submission id: delivery.Send keeps it so that a part cut
// short resumes with the blocks it stored.
func (q *Queue) SendState(id string, part int) string {
	return filepath.Join(q.dir, fmt.Sprintf("%s.%d%s", id, part, sendStateSuffix))
}

// RemoveSendState drops the send state of one part, so it starts over.
func (q *Queue) RemoveSendState(id string, part int) error {
	if err := checkQueueID(id); err != nil {
		return err
	}
	if err := os.Remove(q.SendState(id, part)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("mailbox: outbox: %w", err)
	}
	return nil
}

// Remove drops a submission and its states: it was sent, or bounced.
// The send states go first, so a crash on the way leaves no large file
// behind without its entry.
func (q *Queue) Remove(id string) error {
	if err := checkQueueID(id); err != nil {
		return err
	}
	paths, err := filepath.Glob(filepath.Join(q.dir, id+".*"+sendStateSuffix))
	if err != nil {
		return fmt.Errorf("mailbox: outbox: %w", err)
	}
	var errs []error
	for _, p := range append(paths, filepath.Join(q.dir, id+queueSuffix), filepath.Join(q.dir, id+stateSuffix)) {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := syncDir(q.dir); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("mailbox: outbox: %w", err)
	}
	return nil
}

// encode writes the magic, "attempts N", "next <unix>", "done <part>"
// per part sent, and "error <text>" when there is one.
func (st QueueState) encode() []byte {
	var b bytes.Buffer
	next := int64(0)
	if !st.Next.IsZero() {
		next = st.Next.Unix()
	}
	fmt.Fprintf(&b, "%s\nattempts %d\nnext %d\n", queueStateMagic, st.Attempts, next)
	for i, d := range st.Done {
		if d {
			fmt.Fprintf(&b, "done %d\n", i)
		}
	}
	if st.Err != "" {
		// Byte by byte, so any other byte (even invalid UTF-8) reads back
		// as it was written; a long one is cut at a character's start.
		e := []byte(st.Err)
		for i, c := range e {
			if c < ' ' || c == 0x7f {
				e[i] = ' '
			}
		}
		if len(e) > maxQueueError {
			cut := maxQueueError
			for back := 0; back < utf8.UTFMax-1 && !utf8.RuneStart(e[cut]); back++ {
				cut--
			}
			e = e[:cut]
		}
		fmt.Fprintf(&b, "error %s\n", e)
	}
	return b.Bytes()
}

func decodeQueueState(b []byte, parts int) (QueueState, error) {
	st := QueueState{Done: make([]bool, parts)}
	if len(b) > maxQueueState || !bytes.HasSuffix(b, []byte("\n")) {
		return st, fmt.Errorf("%w: state file not ending in a line feed, or over %d bytes", ErrQueueEntry, maxQueueState)
	}
	lines := strings.Split(string(b[:len(b)-1]), "\n")
	if len(lines) < 3 || lines[0] != queueStateMagic {
		return st, fmt.Errorf("%w: state file does not start with %q", ErrQueueEntry, queueStateMagic)
	}
	num := func(line, key string, limit int64) (int64, error) {
		v, ok := strings.CutPrefix(line, key+" ")
		n, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil || n < 0 || n > limit || strconv.FormatInt(n, 10) != v {
			return 0, fmt.Errorf("%w: state line %q", ErrQueueEntry, line)
		}
		return n, nil
	}
	a, err := num(lines[1], "attempts", 1<<31-1)
	if err != nil {
		return st, err
	}
	st.Attempts = int(a)
	next, err := num(lines[2], "next", 1<<62)
	if err != nil {
		return st, err
	}
	if next != 0 {
		st.Next = time.Unix(next, 0)
	}
	last := -1
	for i, line := range lines[3:] {
		if e, ok := strings.CutPrefix(line, "error "); ok && i == len(lines)-4 && e != "" && len(e) <= maxQueueError && !strings.ContainsFunc(e, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			st.Err = e
			continue
		}
		p, err := num(line, "done", int64(parts-1))
		if err != nil {
			return st, err
		}
		if int(p) <= last {
			return st, fmt.Errorf("%w: done parts out of order", ErrQueueEntry)
		}
		last = int(p)
		st.Done[p] = true
	}
	return st, nil
}
