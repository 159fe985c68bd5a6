package mailbox

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/flowmail/flowmail/internal/atomicfile"
)

// Message is one message of a folder as the folder last saw it.
type Message struct {
	UID   uint32
	Flags Flags
	Size  int64     // bytes with CRLF line ends, as IMAP counts them
	Date  time.Time // when it arrived (the file's modification time)
	file  string    // its name in cur/
}

// Folder is one Maildir of a Store. Its methods are safe for concurrent
// use; each works on the disk and then on the Folder's view of it.
type Folder struct {
	store      *Store
	name, path string

	mu      sync.Mutex
	uids    uidState
	msgs    []Message     // by UID
	changed chan struct{} // closed, and replaced, at each change
	gone    bool          // deleted or renamed
}

// Name is the folder's name.
func (f *Folder) Name() string { return f.name }

// UIDValidity never changes while the folder exists.
func (f *Folder) UIDValidity() uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.uids.Validity
}

// UIDNext is the UID the next message will get.
func (f *Folder) UIDNext() uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.uids.Next
}

// Messages returns the messages in UID order.
func (f *Folder) Messages() []Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Message(nil), f.msgs...)
}

// Changed returns a channel that is closed at the next change of the
// folder's messages or flags (or when the folder goes away).
func (f *Folder) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

// broadcast wakes every waiter on Changed; f.mu is held.
func (f *Folder) broadcast() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *Folder) markGone() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.gone {
		f.gone = true
		f.broadcast()
	}
}

// load reads the UID file, or rebuilds it from the folder list (spec
// 16.3), never giving a UID lower than one the folder's files carry, and
// then syncs with the disk.
func (f *Folder) load() error {
	b, err := atomicfile.ReadBounded(filepath.Join(f.path, UIDFile), maxUIDFile)
	if err == nil {
		f.uids, err = decodeUIDFile(b)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, ErrUIDFile) {
		return fmt.Errorf("mailbox: %s: %w", f.name, err)
	}
	entry, listed := f.store.listEntry(f.name)
	if err != nil { // lost or damaged: the folder list has its copy
		f.uids = uidState{Validity: entry.Validity, Next: entry.Next}
		if !listed {
			f.uids = uidState{Validity: f.store.newValidity(), Next: 1}
		}
	} else if listed && entry.Validity == f.uids.Validity {
		f.uids.Next = max(f.uids.Next, entry.Next)
	}
	// A UID file restored from an old backup must not hand out UIDs that
	// files already carry.
	names, err := readNames(filepath.Join(f.path, "cur"))
	if err != nil {
		return err
	}
	for _, name := range names {
		if n := parseFileName(name); n.validity == f.uids.Validity && n.uid >= f.uids.Next && n.uid < 1<<32-1 {
			f.uids.Next = n.uid + 1
		}
	}
	if err := f.saveUIDs(); err != nil {
		return err
	}
	if err := f.store.noteFolder(f.name, f.uids); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.syncLocked()
}

func (f *Folder) saveUIDs() error {
	if err := atomicfile.Write(filepath.Join(f.path, UIDFile), f.uids.encode(), 0o600); err != nil {
		return fmt.Errorf("mailbox: %s: writing the UID file: %w", f.name, err)
	}
	return nil
}

// reserve takes n UIDs, writing the UID file before any file carries
// one: a crash afterwards skips them, never reuses them. f.mu is held.
func (f *Folder) reserve(n int) (uint32, error) {
	if uint64(f.uids.Next)+uint64(n) >= 1<<32 {
		return 0, fmt.Errorf("mailbox: %s: out of UIDs", f.name)
	}
	first := f.uids.Next
	f.uids.Next += uint32(n)
	if err := f.saveUIDs(); err != nil {
		f.uids.Next = first
		return 0, err
	}
	return first, nil
}

func readNames(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("mailbox: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("mailbox: %w", err)
	}
	out := names[:0]
	for _, n := range names {
		if !strings.HasPrefix(n, ".") {
			out = append(out, n)
		}
	}
	return out, nil
}

// Sync reads the folder's directories and brings the Folder's view up to
// date: mail delivered into new/ by fetch moves to cur/ with the next
// UIDs (in the order it arrived), flags changed by other programs are
// taken, files others removed are dropped, and files that carry no UID
// of this folder (added or moved in by another program) are numbered.
func (f *Folder) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.syncLocked()
}

type pending struct {
	dir  string // "new" or "cur"
	name string
	n    fileName
}

func (f *Folder) syncLocked() error {
	if f.gone {
		return fmt.Errorf("%w: %q was deleted or renamed", ErrNoFolder, f.name)
	}
	cur, err := readNames(filepath.Join(f.path, "cur"))
	if err != nil {
		return err
	}
	fresh, err := readNames(filepath.Join(f.path, "new"))
	if err != nil {
		return err
	}
	old := make(map[uint32]Message, len(f.msgs))
	for _, m := range f.msgs {
		old[m.UID] = m
	}
	claims := map[uint32][]pending{}
	var todo []pending
	for _, name := range cur {
		n := parseFileName(name)
		if n.uid != 0 && n.validity == f.uids.Validity && n.uid < f.uids.Next && n.crlfSize >= 0 {
			claims[n.uid] = append(claims[n.uid], pending{"cur", name, n})
		} else {
			todo = append(todo, pending{"cur", name, n})
		}
	}
	for _, name := range fresh {
		todo = append(todo, pending{"new", name, parseFileName(name)})
	}
	msgs := make([]Message, 0, len(claims)+len(todo))
	for uid, ps := range claims {
		// One file per UID: a copy made by another program is numbered anew.
		keep := 0
		sort.Slice(ps, func(i, j int) bool { return ps[i].name < ps[j].name })
		for i, p := range ps {
			if o, ok := old[uid]; ok && parseFileName(o.file).base == p.n.base {
				keep = i
			}
		}
		for i, p := range ps {
			if i != keep {
				todo = append(todo, p)
			}
		}
		n := ps[keep].n
		m := Message{UID: uid, Flags: n.flags, Size: n.crlfSize, file: ps[keep].name}
		if o, ok := old[uid]; ok && parseFileName(o.file).base == n.base {
			m.Date = o.Date
		} else if fi, err := os.Stat(filepath.Join(f.path, "cur", m.file)); err == nil {
			m.Date = fi.ModTime()
		} else {
			continue // gone meanwhile
		}
		msgs = append(msgs, m)
	}
	if len(todo) > 0 {
		sort.Slice(todo, func(i, j int) bool { return todo[i].n.base < todo[j].n.base })
		first, err := f.reserve(len(todo))
		if err != nil {
			return err
		}
		for i, p := range todo {
			m, err := f.number(p, first+uint32(i))
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed by another program meanwhile
			}
			if err != nil {
				return err
			}
			msgs = append(msgs, m)
		}
		if err := syncDir(filepath.Join(f.path, "cur")); err != nil {
			return fmt.Errorf("mailbox: %w", err)
		}
	}
	sort.Slice(msgs, func(i, j int) bool { return msgs[i].UID < msgs[j].UID })
	if !sameMessages(msgs, f.msgs) {
		f.msgs = msgs
		f.broadcast()
	}
	return nil
}

// number gives the file p the UID uid: its name in cur/ gets U, V and W.
func (f *Folder) number(p pending, uid uint32) (Message, error) {
	from := filepath.Join(f.path, p.dir, p.name)
	n := p.n
	if p.dir == "new" {
		if err := toLF(from, filepath.Join(f.path, "tmp")); err != nil {
			return Message{}, err
		}
		n.crlfSize = -1
	}
	if n.crlfSize < 0 || n.validity != f.uids.Validity {
		size, err := crlfSize(from)
		if err != nil {
			return Message{}, err
		}
		n.crlfSize = size
	}
	n.uid, n.validity = uid, f.uids.Validity
	to := filepath.Join(f.path, "cur", n.String())
	if err := os.Rename(from, to); err != nil {
		return Message{}, err
	}
	fi, err := os.Stat(to)
	if err != nil {
		return Message{}, err
	}
	return Message{UID: uid, Flags: n.flags, Size: n.crlfSize, Date: fi.ModTime(), file: n.String()}, nil
}

func sameMessages(a, b []Message) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].UID != b[i].UID || a[i].Flags != b[i].Flags {
			return false
		}
	}
	return true
}

// crlfSize is the size of a file once each LF not after a CR is a CRLF.
func crlfSize(path string) (int64, error) {
	fh, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer fh.Close()
	var n int64
	var prev byte
	r := bufio.NewReaderSize(fh, 64<<10)
	for {
		b, err := r.ReadByte()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return 0, err
		}
		n++
		if b == '\n' && prev != '\r' {
			n++
		}
		prev = b
	}
}

// find returns the index of uid in f.msgs; f.mu is held.
func (f *Folder) find(uid uint32) (int, bool) {
	i := sort.Search(len(f.msgs), func(i int) bool { return f.msgs[i].UID >= uid })
	return i, i < len(f.msgs) && f.msgs[i].UID == uid
}

// Open returns the message's bytes with CRLF line ends, as IMAP serves
// them, and the message as the folder sees it.
func (f *Folder) Open(uid uint32) (io.ReadCloser, Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for try := 0; ; try++ {
		i, ok := f.find(uid)
		if !ok {
			return nil, Message{}, fmt.Errorf("%w: UID %d in %q", ErrNoMessage, uid, f.name)
		}
		m := f.msgs[i]
		fh, err := os.Open(filepath.Join(f.path, "cur", m.file))
		if err == nil {
			return readCloser{NewCRLFReader(fh), fh}, m, nil
		}
		if !errors.Is(err, fs.ErrNotExist) || try > 0 {
			return nil, Message{}, fmt.Errorf("mailbox: %w", err)
		}
		// Renamed by another program (a flag change): look again.
		if err := f.syncLocked(); err != nil {
			return nil, Message{}, err
		}
	}
}

// Append adds a message read from r (CRLF or LF line ends; stored with
// LF) with the given flags and arrival date, and returns it with its new
// UID. More than limit bytes is ErrTooBig. A reader that fails (a client
// gone mid-upload) leaves nothing behind.
func (f *Folder) Append(r io.Reader, flags Flags, date time.Time, limit int64) (Message, error) {
	name, err := maildirName(f.store.now())
	if err != nil {
		return Message{}, err
	}
	tmp := filepath.Join(f.path, "tmp", name)
	fh, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return Message{}, fmt.Errorf("mailbox: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			fh.Close()
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(fh, 64<<10)
	lw := &lfWriter{w: bw}
	n, err := io.Copy(lw, io.LimitReader(r, limit+1))
	if err != nil {
		return Message{}, fmt.Errorf("mailbox: appending to %q: %w", f.name, err)
	}
	if n > limit {
		return Message{}, fmt.Errorf("%w: over %d bytes", ErrTooBig, limit)
	}
	if err := lw.flush(); err != nil {
		return Message{}, fmt.Errorf("mailbox: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return Message{}, fmt.Errorf("mailbox: %w", err)
	}
	if err := fh.Sync(); err != nil {
		return Message{}, fmt.Errorf("mailbox: %w", err)
	}
	if err := fh.Close(); err != nil {
		return Message{}, fmt.Errorf("mailbox: %w", err)
	}
	ok = true
	if date.IsZero() {
		date = f.store.now()
	}
	if err := os.Chtimes(tmp, date, date); err != nil {
		os.Remove(tmp)
		return Message{}, fmt.Errorf("mailbox: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gone {
		os.Remove(tmp)
		return Message{}, fmt.Errorf("%w: %q", ErrNoFolder, f.name)
	}
	uid, err := f.reserve(1)
	if err != nil {
		os.Remove(tmp)
		return Message{}, err
	}
	fn := fileName{base: parseFileName(name).base, uid: uid, validity: f.uids.Validity, crlfSize: lw.crlf, info: true, flags: flags}
	if err := os.Rename(tmp, filepath.Join(f.path, "cur", fn.String())); err != nil {
		os.Remove(tmp)
		return Message{}, fmt.Errorf("mailbox: %w", err)
	}
	if err := syncDir(filepath.Join(f.path, "cur")); err != nil {
		return Message{}, fmt.Errorf("mailbox: %w", err)
	}
	m := Message{UID: uid, Flags: flags, Size: lw.crlf, Date: date, file: fn.String()}
	f.msgs = append(f.msgs, m) // the highest UID yet: the order holds
	f.broadcast()
	return m, nil
}

// FlagOp says how SetFlags combines the given flags with a message's.
type FlagOp uint8

// How SetFlags changes flags.
const (
	FlagsReplace FlagOp = iota
	FlagsAdd
	FlagsRemove
)

// SetFlags changes the flags of the messages named by uids (those that
// exist) by renaming their files, and returns them as they now are.
func (f *Folder) SetFlags(uids []uint32, op FlagOp, flags Flags) ([]Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Message
	changed := false
	for _, uid := range uids {
		for try := 0; ; try++ {
			i, ok := f.find(uid)
			if !ok {
				break
			}
			m := &f.msgs[i]
			nf := m.Flags
			switch op {
			case FlagsReplace:
				nf = flags
			case FlagsAdd:
				nf |= flags
			case FlagsRemove:
				nf &^= flags
			}
			if nf == m.Flags {
				out = append(out, *m)
				break
			}
			n := parseFileName(m.file)
			n.flags = nf
			err := os.Rename(filepath.Join(f.path, "cur", m.file), filepath.Join(f.path, "cur", n.String()))
			if err == nil {
				m.Flags, m.file = nf, n.String()
				out = append(out, *m)
				changed = true
				break
			}
			if !errors.Is(err, fs.ErrNotExist) || try > 0 {
				return out, fmt.Errorf("mailbox: %w", err)
			}
			if err := f.syncLocked(); err != nil { // renamed by another program
				return out, err
			}
		}
	}
	if changed {
		if err := syncDir(filepath.Join(f.path, "cur")); err != nil {
			return out, fmt.Errorf("mailbox: %w", err)
		}
		f.broadcast()
	}
	return out, nil
}

// Remove deletes the messages named by uids (IMAP's EXPUNGE). The folder
// list learns the next UID first, so the UIDs are never given again even
// if the UID file is lost afterwards.
func (f *Folder) Remove(uids []uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.store.noteFolder(f.name, f.uids); err != nil {
		return err
	}
	gone := map[uint32]bool{}
	var errs []error
	for _, uid := range uids {
		i, ok := f.find(uid)
		if !ok {
			continue
		}
		if err := os.Remove(filepath.Join(f.path, "cur", f.msgs[i].file)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		gone[uid] = true
	}
	if len(gone) == 0 {
		return errors.Join(errs...)
	}
	kept := f.msgs[:0]
	for _, m := range f.msgs {
		if !gone[m.UID] {
			kept = append(kept, m)
		}
	}
	f.msgs = kept
	f.broadcast()
	if err := syncDir(filepath.Join(f.path, "cur")); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("mailbox: removing from %q: %w", f.name, err)
	}
	return nil
}

// CopyTo copies (or, with move, moves) the messages named by uids into
// dst, keeping their flags, and returns the pairs (UID here, UID in dst)
// in UID order. A copy is a hard link where the file system allows.
func (f *Folder) CopyTo(uids []uint32, dst *Folder, move bool) ([][2]uint32, error) {
	f.mu.Lock()
	var sel []Message
	for _, uid := range uids {
		if i, ok := f.find(uid); ok {
			sel = append(sel, f.msgs[i])
		}
	}
	f.mu.Unlock()
	sort.Slice(sel, func(i, j int) bool { return sel[i].UID < sel[j].UID })
	if len(sel) == 0 {
		return nil, nil
	}
	dst.mu.Lock()
	first, err := dst.reserve(len(sel))
	validity := dst.uids.Validity
	dst.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if move {
		if err := f.store.noteFolder(f.name, uidState{Validity: f.UIDValidity(), Next: f.UIDNext()}); err != nil {
			return nil, err
		}
	}
	var pairs [][2]uint32
	var errs []error
	f.mu.Lock()
	for k, m := range sel {
		n := parseFileName(m.file)
		if !move {
			name, err := maildirName(f.store.now())
			if err != nil {
				errs = append(errs, err)
				continue
			}
			n.base = parseFileName(name).base
		}
		n.uid, n.validity = first+uint32(k), validity
		from, to := filepath.Join(f.path, "cur", m.file), filepath.Join(dst.path, "cur", n.String())
		if move {
			err = os.Rename(from, to)
		} else {
			err = linkOrCopy(from, to)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		pairs = append(pairs, [2]uint32{m.UID, n.uid})
	}
	if move && len(pairs) > 0 {
		kept := f.msgs[:0]
		for _, m := range f.msgs {
			if i := sort.Search(len(pairs), func(i int) bool { return pairs[i][0] >= m.UID }); i == len(pairs) || pairs[i][0] != m.UID {
				kept = append(kept, m)
			}
		}
		f.msgs = kept
		f.broadcast()
		if err := syncDir(filepath.Join(f.path, "cur")); err != nil {
			errs = append(errs, err)
		}
	}
	f.mu.Unlock()
	if err := syncDir(filepath.Join(dst.path, "cur")); err != nil {
		errs = append(errs, err)
	}
	if err := dst.Sync(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return pairs, fmt.Errorf("mailbox: copying from %q to %q: %w", f.name, dst.name, err)
	}
	return pairs, nil
}

func linkOrCopy(from, to string) error {
	if err := os.Link(from, to); err == nil {
		return nil
	}
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	// Written in tmp/, where no reader takes it for a message.
	tmp := filepath.Join(filepath.Dir(filepath.Dir(to)), "tmp", filepath.Base(to))
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chtimes(tmp, fi.ModTime(), fi.ModTime())
	}
	if err == nil {
		err = os.Rename(tmp, to)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// Message returns the message with the given UID as the folder last saw it.
func (f *Folder) Message(uid uint32) (Message, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, ok := f.find(uid)
	if !ok {
		return Message{}, false
	}
	return f.msgs[i], true
}
