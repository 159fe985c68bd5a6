package mailbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/flowmail/flowmail/internal/atomicfile"
)

// Inbox is the name of the folder at the root of the Maildir.
const Inbox = "INBOX"

// Delimiter separates the levels of a folder name ("Work.Projects"), as
// in Maildir++ directory names.
const Delimiter = '.'

// StoreLockFile is held (flock) by the one process that numbers the
// store's messages: the bridge.
const StoreLockFile = "flowmail-store.lock"

// Errors of the Store, wrapped with detail.
var (
	ErrNoFolder     = errors.New("mailbox: no such folder")
	ErrFolderExists = errors.New("mailbox: folder exists already")
	ErrFolderName   = errors.New("mailbox: invalid folder name")
	ErrNoMessage    = errors.New("mailbox: no such message")
	ErrTooBig       = errors.New("mailbox: message too large")
	ErrStoreLocked  = errors.New("mailbox: the mail store is in use by another bridge")
	// ErrLocked: a lock file is held by another process.
	ErrLocked = errors.New("locked")
)

// Store is a Maildir++ tree (docs/PROTOCOL.md 16): INBOX is the Maildir
// at the root, every other folder a Maildir in ".<name>" beside its new/,
// cur/ and tmp/. Messages carry their UID, the UIDVALIDITY it belongs to,
// their size with CRLF line ends and their flags in their file names;
// each folder's UIDVALIDITY and next UID are in its UID file, and the
// folder list at the root keeps a copy of both, so UIDs never change and
// are never used twice, whatever is lost of the two.
//
// Other programs may read the tree, deliver into new/ (flowmail fetch),
// change flags by renaming files (mutt, notmuch) and add or remove files;
// Sync picks up what they did. Only the process holding the store (one
// at a time: OpenStore takes a lock) numbers messages.
type Store struct {
	dir    string
	now    func() time.Time
	unlock func() error

	mu      sync.Mutex
	list    folderList         // the folder list, in memory
	folders map[string]*Folder // opened folders
}

// OpenStore opens the Maildir++ tree at dir, creating the INBOX Maildir
// when missing, and locks it against other stores until Close. now gives
// the time new UIDVALIDITYs are made from.
func OpenStore(dir string, now func() time.Time) (*Store, error) {
	if err := makeMaildir(dir); err != nil {
		return nil, err
	}
	unlock, err := lockDir(filepath.Join(dir, StoreLockFile))
	if errors.Is(err, ErrLocked) {
		return nil, fmt.Errorf("%w: %s", ErrStoreLocked, dir)
	}
	if err != nil {
		return nil, err
	}
	s := &Store{dir: dir, now: now, unlock: unlock, folders: map[string]*Folder{}}
	b, err := atomicfile.ReadBounded(filepath.Join(dir, FolderListFile), maxFolderListFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		unlock()
		return nil, fmt.Errorf("mailbox: %w", err)
	default:
		if s.list, err = decodeFolderList(b); err != nil {
			unlock()
			return nil, fmt.Errorf("%s: %w (move it away: it is rebuilt from the folders' UID files)", filepath.Join(dir, FolderListFile), err)
		}
	}
	return s, nil
}

// Close releases the lock.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unlock == nil {
		return nil
	}
	err := s.unlock()
	s.unlock = nil
	return err
}

// Dir is the root of the tree (INBOX).
func (s *Store) Dir() string { return s.dir }

func makeMaildir(dir string) error {
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return fmt.Errorf("mailbox: maildir: %w", err)
		}
	}
	return nil
}

// checkFolderName accepts a folder name other than INBOX: UTF-8 without
// control characters, '/', '*' or '%', levels separated by single dots
// with none empty, at most maxFolderName bytes.
func checkFolderName(name string) error {
	switch {
	case name == "" || len(name) > maxFolderName:
		return fmt.Errorf("%w: %q: empty or longer than %d bytes", ErrFolderName, name, maxFolderName)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: %q is not UTF-8", ErrFolderName, name)
	case strings.EqualFold(name, Inbox):
		return fmt.Errorf("%w: INBOX is the root folder", ErrFolderName)
	case strings.ContainsAny(name, "/*%\\"):
		return fmt.Errorf("%w: %q: '/', '\\', '*' and '%%' cannot appear in a folder name", ErrFolderName, name)
	}
	for _, r := range name {
		if r < ' ' || r == 0x7f {
			return fmt.Errorf("%w: %q holds a control character", ErrFolderName, name)
		}
	}
	for _, level := range strings.Split(name, string(Delimiter)) {
		if level == "" {
			return fmt.Errorf("%w: %q: a level of the name is empty (two dots, or a dot at an end)", ErrFolderName, name)
		}
	}
	return nil
}

// canonical turns any case of "inbox" into INBOX and checks other names.
func canonical(name string) (string, error) {
	if strings.EqualFold(name, Inbox) {
		return Inbox, nil
	}
	return name, checkFolderName(name)
}

func (s *Store) folderPath(name string) string {
	if name == Inbox {
		return s.dir
	}
	return filepath.Join(s.dir, "."+name)
}

// Folders lists the folders on disk, INBOX first, the others sorted.
func (s *Store) Folders() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("mailbox: %w", err)
	}
	var names []string
	for _, e := range ents {
		n, ok := strings.CutPrefix(e.Name(), ".")
		if !ok || !e.IsDir() || checkFolderName(n) != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(s.dir, e.Name(), "cur")); err == nil {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return append([]string{Inbox}, names...), nil
}

// Exists reports whether the folder is on disk.
func (s *Store) Exists(name string) bool {
	name, err := canonical(name)
	if err != nil {
		return false
	}
	_, err = os.Stat(filepath.Join(s.folderPath(name), "cur"))
	return err == nil
}

// Create makes a folder with a new UIDVALIDITY. Levels above it need not
// exist (Maildir++ keeps each folder in its own directory).
func (s *Store) Create(name string) error {
	name, err := canonical(name)
	if err != nil {
		return err
	}
	if s.Exists(name) {
		return fmt.Errorf("%w: %q", ErrFolderExists, name)
	}
	path := s.folderPath(name)
	if err := makeMaildir(path); err != nil {
		return err
	}
	// maildirfolder marks a Maildir++ subfolder for delivery agents.
	if err := os.WriteFile(filepath.Join(path, "maildirfolder"), nil, 0o600); err != nil {
		return fmt.Errorf("mailbox: %w", err)
	}
	_, err = s.Folder(name)
	return err
}

// Folder opens a folder (once; later calls return the same Folder),
// reading or rebuilding its UIDs, and syncs it with the disk.
func (s *Store) Folder(name string) (*Folder, error) {
	name, err := canonical(name)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	f := s.folders[name]
	s.mu.Unlock()
	if f != nil {
		return f, f.Sync()
	}
	if !s.Exists(name) {
		return nil, fmt.Errorf("%w: %q", ErrNoFolder, name)
	}
	f = &Folder{store: s, name: name, path: s.folderPath(name), changed: make(chan struct{})}
	if err := f.load(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if g := s.folders[name]; g != nil {
		f = g // opened meanwhile
	} else {
		s.folders[name] = f
	}
	s.mu.Unlock()
	return f, nil
}

// Delete removes a folder and the messages in it. INBOX cannot be
// deleted, nor a folder with folders below it.
func (s *Store) Delete(name string) error {
	name, err := canonical(name)
	if err != nil {
		return err
	}
	if name == Inbox {
		return fmt.Errorf("%w: INBOX cannot be deleted", ErrFolderName)
	}
	if !s.Exists(name) {
		return fmt.Errorf("%w: %q", ErrNoFolder, name)
	}
	all, err := s.Folders()
	if err != nil {
		return err
	}
	for _, n := range all {
		if strings.HasPrefix(n, name+string(Delimiter)) {
			return fmt.Errorf("%w: %q has folders below it (%q): delete those first", ErrFolderName, name, n)
		}
	}
	s.mu.Lock()
	f := s.folders[name]
	delete(s.folders, name)
	s.mu.Unlock()
	if f != nil {
		f.markGone()
	}
	// Renamed away first, so a crash leaves no half-deleted folder that
	// still looks like one.
	trash := filepath.Join(s.dir, "tmp", "deleted-folder-"+strings.ReplaceAll(name, string(Delimiter), "_")+fmt.Sprint(s.now().UnixNano()))
	if err := os.Rename(s.folderPath(name), trash); err != nil {
		return fmt.Errorf("mailbox: deleting %q: %w", name, err)
	}
	if err := s.dropListEntry(name); err != nil {
		return err
	}
	return os.RemoveAll(trash)
}

// Rename gives a folder, and the folders below it, a new name. Their
// UIDVALIDITY and UIDs stay: the messages are the same.
func (s *Store) Rename(from, to string) error {
	from, err := canonical(from)
	if err != nil {
		return err
	}
	if to, err = canonical(to); err != nil {
		return err
	}
	if from == Inbox || to == Inbox {
		return fmt.Errorf("%w: INBOX cannot be renamed, nor another folder to INBOX", ErrFolderName)
	}
	if !s.Exists(from) {
		return fmt.Errorf("%w: %q", ErrNoFolder, from)
	}
	if s.Exists(to) {
		return fmt.Errorf("%w: %q", ErrFolderExists, to)
	}
	all, err := s.Folders()
	if err != nil {
		return err
	}
	var moves [][2]string
	for _, n := range all {
		if n == from || strings.HasPrefix(n, from+string(Delimiter)) {
			moves = append(moves, [2]string{n, to + n[len(from):]})
		}
	}
	for _, m := range moves {
		if err := checkFolderName(m[1]); err != nil {
			return err
		}
	}
	for _, m := range moves {
		s.mu.Lock()
		f := s.folders[m[0]]
		delete(s.folders, m[0])
		s.mu.Unlock()
		if f != nil {
			f.markGone()
		}
		if err := os.Rename(s.folderPath(m[0]), s.folderPath(m[1])); err != nil {
			return fmt.Errorf("mailbox: renaming %q: %w", m[0], err)
		}
		if err := s.renameListEntry(m[0], m[1]); err != nil {
			return err
		}
	}
	return nil
}

// listEntry returns the folder list's entry for name.
func (s *Store) listEntry(name string) (folderEntry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.list.Entries {
		if e.Name == name {
			return e, true
		}
	}
	return folderEntry{}, false
}

// noteFolder records a folder's UIDVALIDITY and next UID in the folder
// list, writing it when either grew or is new.
func (s *Store) noteFolder(name string, u uidState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, e := range s.list.Entries {
		if e.Name == name {
			if e.Validity == u.Validity && e.Next >= u.Next {
				return nil
			}
			if e.Validity == u.Validity {
				u.Next = max(u.Next, e.Next)
			}
			s.list.Entries[i] = folderEntry{Validity: u.Validity, Next: u.Next, Name: name}
			return s.saveList()
		}
	}
	s.list.Entries = append(s.list.Entries, folderEntry{Validity: u.Validity, Next: u.Next, Name: name})
	return s.saveList()
}

func (s *Store) dropListEntry(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, e := range s.list.Entries {
		if e.Name == name {
			s.list.Entries = append(s.list.Entries[:i], s.list.Entries[i+1:]...)
			return s.saveList()
		}
	}
	return nil
}

func (s *Store) renameListEntry(from, to string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, e := range s.list.Entries {
		if e.Name == from {
			s.list.Entries[i].Name = to
			return s.saveList()
		}
	}
	return nil
}

// saveList writes the folder list, sorted by name; s.mu is held.
func (s *Store) saveList() error {
	sort.Slice(s.list.Entries, func(i, j int) bool { return s.list.Entries[i].Name < s.list.Entries[j].Name })
	if err := atomicfile.Write(filepath.Join(s.dir, FolderListFile), encodeFolderList(s.list), 0o600); err != nil {
		return fmt.Errorf("mailbox: writing the folder list: %w", err)
	}
	return nil
}

// newValidity is a UIDVALIDITY for a folder created now: the time in
// seconds, and above every UIDVALIDITY the store gave before, so a folder
// deleted and made again never reuses one. The folder list records it
// when the folder is noted.
func (s *Store) newValidity() uint32 {
	v := uint32(max(1, min(s.now().Unix(), 1<<32-1)))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.list.LastValidity >= v && s.list.LastValidity < 1<<32-1 {
		v = s.list.LastValidity + 1
	}
	s.list.LastValidity = max(s.list.LastValidity, v)
	return v
}
