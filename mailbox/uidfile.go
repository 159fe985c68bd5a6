package mailbox

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// UIDFile is the name of the file in each folder that holds its
// UIDVALIDITY and the next UID to assign (docs/PROTOCOL.md 16.2).
const UIDFile = "flowmail-uids"

// FolderListFile is the name of the file at the root of the store that
// lists every folder with its UIDVALIDITY and a UID high-water mark: the
// copy a lost UID file is rebuilt from (docs/PROTOCOL.md 16.3).
const FolderListFile = "flowmail-folders"

// Limits of the two files: far above what they hold, small enough that a
// damaged or foreign file is refused before it is read whole.
const (
	maxUIDFile        = 256
	maxFolderListFile = 4 << 20
	maxFolderName     = 200 // bytes of a folder name, so the directory name fits in 255
)

// ErrUIDFile reports a UID file or folder list that does not parse.
var ErrUIDFile = errors.New("mailbox: damaged UID file")

// uidState is what a UID file holds.
type uidState struct {
	Validity uint32 // never 0
	Next     uint32 // the next UID to assign; never 0
}

const uidFileMagic = "flowmail-uids 1"

func (u uidState) encode() []byte {
	return fmt.Appendf(nil, "%s\nuidvalidity %d\nuidnext %d\n", uidFileMagic, u.Validity, u.Next)
}

// decodeUIDFile parses a UID file: exactly three LF-terminated lines, the
// magic, "uidvalidity N" and "uidnext N", numbers in canonical decimal
// from 1 to 2^32-1.
func decodeUIDFile(b []byte) (uidState, error) {
	var u uidState
	if len(b) > maxUIDFile {
		return u, fmt.Errorf("%w: %d bytes, more than %d", ErrUIDFile, len(b), maxUIDFile)
	}
	lines, err := splitLines(b)
	if err != nil {
		return u, err
	}
	if len(lines) != 3 || lines[0] != uidFileMagic {
		return u, fmt.Errorf("%w: want the lines %q, uidvalidity and uidnext", ErrUIDFile, uidFileMagic)
	}
	if u.Validity, err = field(lines[1], "uidvalidity"); err != nil {
		return u, err
	}
	if u.Next, err = field(lines[2], "uidnext"); err != nil {
		return u, err
	}
	return u, nil
}

// splitLines splits LF-terminated lines; the last must be terminated too.
func splitLines(b []byte) ([]string, error) {
	if len(b) == 0 || b[len(b)-1] != '\n' {
		return nil, fmt.Errorf("%w: empty or not ending in a line feed", ErrUIDFile)
	}
	return strings.Split(string(b[:len(b)-1]), "\n"), nil
}

// field parses "key N".
func field(line, key string) (uint32, error) {
	v, ok := strings.CutPrefix(line, key+" ")
	if !ok {
		return 0, fmt.Errorf("%w: want %q, got %q", ErrUIDFile, key+" N", line)
	}
	return parseUID(v)
}

// parseUID parses a canonical decimal from 1 to 2^32-1.
func parseUID(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 || s[0] == '0' || s[0] == '+' {
		return 0, fmt.Errorf("%w: %q is not a number from 1 to 4294967295", ErrUIDFile, s)
	}
	return uint32(n), nil
}

// folderEntry is one line of the folder list.
type folderEntry struct {
	Validity uint32
	Next     uint32 // at least every UID ever used in the folder at the last write
	Name     string
}

const folderListMagic = "flowmail-folders 1"

// folderList is what the folder list file holds.
type folderList struct {
	// LastValidity is the highest UIDVALIDITY ever given in the store, so
	// a folder deleted and made again gets a higher one.
	LastValidity uint32
	Entries      []folderEntry
}

// encodeFolderList writes the magic, "lastvalidity N", then "validity
// next name" per folder in the given order.
func encodeFolderList(l folderList) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\nlastvalidity %d\n", folderListMagic, l.LastValidity)
	for _, e := range l.Entries {
		fmt.Fprintf(&b, "%d %d %s\n", e.Validity, e.Next, e.Name)
	}
	return b.Bytes()
}

// decodeFolderList parses the folder list: the magic line, the
// lastvalidity line, then one line per folder, "validity next name", each
// name INBOX or valid (checkFolderName), listed once, with a validity not
// above lastvalidity.
func decodeFolderList(b []byte) (folderList, error) {
	var l folderList
	if len(b) > maxFolderListFile {
		return l, fmt.Errorf("%w: folder list of %d bytes, more than %d", ErrUIDFile, len(b), maxFolderListFile)
	}
	lines, err := splitLines(b)
	if err != nil {
		return l, err
	}
	if len(lines) < 2 || lines[0] != folderListMagic {
		return l, fmt.Errorf("%w: the folder list does not start with %q and lastvalidity", ErrUIDFile, folderListMagic)
	}
	if l.LastValidity, err = field(lines[1], "lastvalidity"); err != nil {
		return l, err
	}
	seen := map[string]bool{}
	for _, line := range lines[2:] {
		v, rest, ok1 := strings.Cut(line, " ")
		n, name, ok2 := strings.Cut(rest, " ")
		if !ok1 || !ok2 {
			return l, fmt.Errorf("%w: folder list line %q", ErrUIDFile, line)
		}
		var e folderEntry
		if e.Validity, err = parseUID(v); err != nil {
			return l, err
		}
		if e.Validity > l.LastValidity {
			return l, fmt.Errorf("%w: folder %q has UIDVALIDITY %d, above lastvalidity", ErrUIDFile, name, e.Validity)
		}
		if e.Next, err = parseUID(n); err != nil {
			return l, err
		}
		if name != Inbox {
			if err := checkFolderName(name); err != nil {
				return l, fmt.Errorf("%w: %w", ErrUIDFile, err)
			}
		}
		if seen[name] {
			return l, fmt.Errorf("%w: folder %q listed twice", ErrUIDFile, name)
		}
		seen[name] = true
		e.Name = name
		l.Entries = append(l.Entries, e)
	}
	return l, nil
}
