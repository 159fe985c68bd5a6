package mailbox

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func openStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := OpenStore(dir, func() time.Time { return testNow })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func folder(t *testing.T, s *Store, name string) *Folder {
	t.Helper()
	f, err := s.Folder(name)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func deliverN(t *testing.T, dir string, n int) {
	t.Helper()
	for i := range n {
		msg := fmt.Sprintf("From: a@b\r\nSubject: %d\r\n\r\nbody %d\r\n", i, i)
		if _, err := Deliver(dir, []byte(msg), testNow.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
}

type uidView struct {
	validity uint32
	uids     []uint32
	subjects []string
}

func view(t *testing.T, f *Folder) uidView {
	t.Helper()
	v := uidView{validity: f.UIDValidity()}
	for _, m := range f.Messages() {
		v.uids = append(v.uids, m.UID)
		r, _, err := f.Open(m.UID)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r)
		r.Close()
		line, _, _ := strings.Cut(string(b[strings.Index(string(b), "Subject: "):]), "\r\n")
		v.subjects = append(v.subjects, line)
	}
	return v
}

func sameView(a, b uidView) bool {
	return a.validity == b.validity && fmt.Sprint(a.uids, a.subjects) == fmt.Sprint(b.uids, b.subjects)
}

func TestUIDsSurviveRestartAndALostUIDFileOrFolderList(t *testing.T) {
	dir := t.TempDir()
	deliverN(t, dir, 3)
	s := openStore(t, dir)
	before := view(t, folder(t, s, Inbox))
	if len(before.uids) != 3 || before.uids[0] != 1 || before.uids[2] != 3 || before.validity == 0 {
		t.Fatalf("first numbering: %+v", before)
	}
	s.Close()

	for _, lose := range [][]string{nil, {UIDFile}, {FolderListFile}} {
		for _, name := range lose {
			p := filepath.Join(dir, name)
			if name == FolderListFile {
				p = filepath.Join(dir, name)
			}
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}
		s := openStore(t, dir)
		got := view(t, folder(t, s, Inbox))
		if !sameView(before, got) {
			t.Fatalf("after losing %v: %+v, want %+v", lose, got, before)
		}
		s.Close()
	}
}

func TestLosingBothUIDCopiesChangesUIDValidity(t *testing.T) {
	dir := t.TempDir()
	deliverN(t, dir, 2)
	s := openStore(t, dir)
	before := view(t, folder(t, s, Inbox))
	s.Close()
	os.Remove(filepath.Join(dir, UIDFile))
	os.Remove(filepath.Join(dir, FolderListFile))
	now := testNow.Add(time.Hour)
	s2, err := OpenStore(dir, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got := view(t, folder(t, s2, Inbox))
	if got.validity == before.validity {
		t.Fatal("UIDVALIDITY kept although nothing proves the old UIDs are not reused")
	}
	if len(got.uids) != 2 {
		t.Fatalf("messages: %+v", got)
	}
}

func TestExpungedUIDsAreNeverGivenAgain(t *testing.T) {
	dir := t.TempDir()
	deliverN(t, dir, 3)
	s := openStore(t, dir)
	in := folder(t, s, Inbox)
	if err := in.Remove([]uint32{3}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	os.Remove(filepath.Join(dir, UIDFile)) // rebuilt from the folder list
	s = openStore(t, dir)
	deliverN(t, dir, 1)
	in = folder(t, s, Inbox)
	ms := in.Messages()
	if len(ms) != 3 || ms[2].UID != 4 {
		t.Fatalf("after expunging UID 3 and losing the UID file: %+v", ms)
	}
}

func TestSyncTakesWhatOtherProgramsDid(t *testing.T) {
	dir := t.TempDir()
	deliverN(t, dir, 2)
	s := openStore(t, dir)
	in := folder(t, s, Inbox)
	ms := in.Messages()
	changed := in.Changed()

	// mutt marks the first read: a rename of its flags.
	old := filepath.Join(dir, "cur", ms[0].file)
	if err := os.Rename(old, strings.TrimSuffix(old, ":2,")+":2,S"); err != nil {
		t.Fatal(err)
	}
	// fetch delivers another mail.
	deliverN(t, dir, 1)
	if err := in.Sync(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("Changed not closed by a sync that saw changes")
	}
	ms = in.Messages()
	if len(ms) != 3 || !ms[0].Flags.Has(FlagSeen) || ms[1].Flags != 0 || ms[2].UID != 3 {
		t.Fatalf("after sync: %+v", ms)
	}
	// The LF files are served with CRLF, and their size counts them.
	r, m, err := in.Open(3)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if int64(len(b)) != m.Size || !bytes.HasSuffix(b, []byte("body 0\r\n")) {
		t.Fatalf("served %q (size %d)", b, m.Size)
	}
}

func TestAFileMovedInByAnotherProgramIsNumberedAnew(t *testing.T) {
	dir := t.TempDir()
	deliverN(t, dir, 1)
	s := openStore(t, dir)
	in := folder(t, s, Inbox)
	if err := s.Create("Archive"); err != nil {
		t.Fatal(err)
	}
	arch := folder(t, s, "Archive")
	if arch.UIDValidity() == in.UIDValidity() {
		t.Fatal("two folders share a UIDVALIDITY")
	}
	m := in.Messages()[0]
	// mutt moves the file as it is, INBOX's UID and all.
	if err := os.Rename(filepath.Join(dir, "cur", m.file), filepath.Join(dir, ".Archive", "cur", m.file)); err != nil {
		t.Fatal(err)
	}
	if err := arch.Sync(); err != nil {
		t.Fatal(err)
	}
	am := arch.Messages()
	if len(am) != 1 || am[0].UID != 1 || !strings.Contains(am[0].file, fmt.Sprintf(",V=%d,", arch.UIDValidity())) {
		t.Fatalf("moved file: %+v", am)
	}
	if err := in.Sync(); err != nil || len(in.Messages()) != 0 {
		t.Fatalf("INBOX after the move: %v %+v", err, in.Messages())
	}
}

func TestAppendStoresLFAndServesTheSameCRLFBytes(t *testing.T) {
	s := openStore(t, t.TempDir())
	in := folder(t, s, Inbox)
	msg := []byte("From: a@b\r\nSubject: x\r\n\r\nline one\r\nbare cr\r stays\r\n")
	m, err := in.Append(bytes.NewReader(msg), FlagSeen|FlagDraft, testNow, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if m.UID != 1 || m.Size != int64(len(msg)) || !m.Date.Equal(testNow) {
		t.Fatalf("appended: %+v", m)
	}
	disk, err := os.ReadFile(filepath.Join(s.Dir(), "cur", m.file))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(disk, []byte("\r\n")) || !strings.HasSuffix(m.file, ":2,DS") {
		t.Fatalf("on disk %q as %s", disk, m.file)
	}
	r, _, err := in.Open(1)
	if err != nil {
		t.Fatal(err)
	}
	back, _ := io.ReadAll(r)
	r.Close()
	if !bytes.Equal(back, msg) {
		t.Fatalf("served %q, want %q", back, msg)
	}
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	n := min(len(p), f.n)
	for i := range n {
		p[i] = 'x'
	}
	f.n -= n
	return n, nil
}

func TestAnAppendCutShortLeavesNothing(t *testing.T) {
	s := openStore(t, t.TempDir())
	in := folder(t, s, Inbox)
	next := in.UIDNext()
	if _, err := in.Append(&failingReader{n: 5000}, 0, time.Time{}, 1<<20); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("append of a broken stream: %v", err)
	}
	if _, err := in.Append(strings.NewReader(strings.Repeat("y", 101)), 0, time.Time{}, 100); !errors.Is(err, ErrTooBig) {
		t.Fatalf("append over the limit: %v", err)
	}
	for _, sub := range []string{"tmp", "cur", "new"} {
		if names, _ := readNames(filepath.Join(s.Dir(), sub)); len(names) != 0 {
			t.Fatalf("%s holds %v", sub, names)
		}
	}
	if in.UIDNext() != next {
		t.Fatal("a failed append used a UID")
	}
}

func TestCopyAndMoveGiveNewUIDsAndKeepFlags(t *testing.T) {
	dir := t.TempDir()
	deliverN(t, dir, 3)
	s := openStore(t, dir)
	in := folder(t, s, Inbox)
	if _, err := in.SetFlags([]uint32{2}, FlagsAdd, FlagFlagged); err != nil {
		t.Fatal(err)
	}
	if err := s.Create("Work.Projects"); err != nil {
		t.Fatal(err)
	}
	w := folder(t, s, "Work.Projects")
	pairs, err := in.CopyTo([]uint32{2, 3}, w, false)
	if err != nil || fmt.Sprint(pairs) != "[[2 1] [3 2]]" {
		t.Fatalf("copy: %v %v", pairs, err)
	}
	pairs, err = in.CopyTo([]uint32{1}, w, true)
	if err != nil || fmt.Sprint(pairs) != "[[1 3]]" {
		t.Fatalf("move: %v %v", pairs, err)
	}
	if got := len(in.Messages()); got != 2 {
		t.Fatalf("INBOX has %d after moving one of 3", got)
	}
	wm := w.Messages()
	if len(wm) != 3 || !wm[0].Flags.Has(FlagFlagged) || wm[1].Flags.Has(FlagFlagged) {
		t.Fatalf("Work.Projects: %+v", wm)
	}
	if _, err := os.Stat(filepath.Join(dir, ".Work.Projects", "maildirfolder")); err != nil {
		t.Fatal("no maildirfolder marker")
	}
}

func TestRenameKeepsUIDsAndDeleteThenCreateChangesUIDValidity(t *testing.T) {
	s := openStore(t, t.TempDir())
	for _, n := range []string{"A", "A.B"} {
		if err := s.Create(n); err != nil {
			t.Fatal(err)
		}
	}
	a := folder(t, s, "A.B")
	if _, err := a.Append(strings.NewReader("Subject: s\n\nx\n"), 0, testNow, 1<<20); err != nil {
		t.Fatal(err)
	}
	v := a.UIDValidity()
	if err := s.Rename("A", "C"); err != nil {
		t.Fatal(err)
	}
	if names, _ := s.Folders(); fmt.Sprint(names) != "[INBOX C C.B]" {
		t.Fatalf("folders after rename: %v", names)
	}
	cb := folder(t, s, "C.B")
	if cb.UIDValidity() != v || len(cb.Messages()) != 1 {
		t.Fatalf("renamed folder: validity %d (was %d), %d messages", cb.UIDValidity(), v, len(cb.Messages()))
	}
	if err := s.Delete("C"); err == nil {
		t.Fatal("deleted a folder with a folder below it")
	}
	if err := s.Delete("C.B"); err != nil {
		t.Fatal(err)
	}
	if err := s.Create("C.B"); err != nil {
		t.Fatal(err)
	}
	if again := folder(t, s, "C.B"); again.UIDValidity() <= v {
		t.Fatalf("recreated folder has UIDVALIDITY %d, not above %d", again.UIDValidity(), v)
	}
}

func TestFolderNames(t *testing.T) {
	for _, bad := range []string{"", "a..b", ".a", "a.", "a/b", "a*", "a%", "x\x01", "inbox", strings.Repeat("a", 201)} {
		if checkFolderName(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, good := range []string{"Sent", "Work.Projects", "Entwürfe", "a b"} {
		if err := checkFolderName(good); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
}

func TestStoreIsHeldByOneBridge(t *testing.T) {
	dir := t.TempDir()
	openStore(t, dir)
	if _, err := OpenStore(dir, time.Now); !errors.Is(err, ErrStoreLocked) {
		t.Fatalf("second OpenStore: %v", err)
	}
}

func FuzzUIDFile(f *testing.F) {
	f.Add([]byte("flowmail-uids 1\nuidvalidity 1772323200\nuidnext 42\n"))
	f.Add([]byte("flowmail-uids 1\nuidvalidity 01\nuidnext 1\n"))
	f.Add([]byte("flowmail-uids 1\nuidvalidity 4294967296\nuidnext 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := decodeUIDFile(b)
		if err != nil {
			if !errors.Is(err, ErrUIDFile) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if !bytes.Equal(u.encode(), b) {
			t.Fatalf("%q decodes but encodes as %q", b, u.encode())
		}
	})
}

func FuzzFolderList(f *testing.F) {
	f.Add([]byte("flowmail-folders 1\nlastvalidity 1772323201\n1772323200 5 Archive\n1772323201 1 INBOX\n1772323201 1 Work.Projects\n"))
	f.Add([]byte("flowmail-folders 1\nlastvalidity 1\n"))
	f.Add([]byte("flowmail-folders 1\nlastvalidity 1\n1 1 a..b\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := decodeFolderList(b)
		if err != nil {
			if !errors.Is(err, ErrUIDFile) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if !bytes.Equal(encodeFolderList(es), b) {
			t.Fatalf("%q decodes but encodes as %q", b, encodeFolderList(es))
		}
	})
}

func FuzzFileName(f *testing.F) {
	f.Add("1772323200.M1P2R0011223344556677.host,U=5,V=1772323200,W=120:2,FS")
	f.Add("1772323200.M1P2R00.host")
	f.Add("x,S=100,U=0,W=-1:2,Sab")
	f.Fuzz(func(t *testing.T, name string) {
		n := parseFileName(name)
		again := parseFileName(n.String())
		if again.String() != n.String() || again.uid != n.uid || again.validity != n.validity || again.flags != n.flags || again.crlfSize != n.crlfSize {
			t.Fatalf("%q: %q then %q", name, n.String(), again.String())
		}
	})
}

// FuzzFolderName feeds folder names as IMAP clients send them (CREATE,
// RENAME, SELECT): never a panic; an accepted name is a directory
// straight under the store's root, never the root's parent or a file of
// the store itself.
func FuzzFolderName(f *testing.F) {
	for _, n := range []string{"Work.Projects", "inbox", "..", ".hidden", "a/b", "Ärger", "a..b", "Sent", "flowmail-uids"} {
		f.Add(n)
	}
	s := &Store{dir: "/store"}
	f.Fuzz(func(t *testing.T, name string) {
		c, err := canonical(name)
		if err != nil {
			if !errors.Is(err, ErrFolderName) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		p := s.folderPath(c)
		if c == Inbox {
			if p != "/store" {
				t.Fatalf("INBOX at %q", p)
			}
			return
		}
		if filepath.Dir(p) != "/store" || !strings.HasPrefix(filepath.Base(p), ".") || filepath.Base(p) == "." || filepath.Base(p) == ".." {
			t.Fatalf("%q is kept at %q", name, p)
		}
	})
}
