package maillist

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/atomicfile"
)

// Limits of the roster file (spec 17.7, section 11).
const (
	// MaxMembers bounds a list's members: each post costs the list one
	// mail per member.
	MaxMembers = 10000
	// MaxNameLen bounds a list's name.
	MaxNameLen = 64
	// maxRosterSize is the longest roster file: its first line, its
	// name line, and MaxMembers member lines.
	maxRosterSize = len(rosterMagic) + 1 + len("name ") + MaxNameLen + 1 + MaxMembers*(len("member ")+addressLen+1)
)

const rosterMagic = "flowmail-list 1"

// addressLen is the length of an address as FormatAddress writes it:
// "fm1", 52 characters of data, 6 of checksum.
const addressLen = 61

var (
	ErrRoster    = errors.New("maillist: malformed roster")
	ErrName      = errors.New("maillist: invalid list name")
	ErrTooMany   = errors.New("maillist: too many members")
	ErrNotMember = errors.New("maillist: not a member of the list")
)

// Roster is a list's name and its members, in the order they were added.
type Roster struct {
	Name    string
	Members []block.ID
}

// CheckName accepts 1 to MaxNameLen characters of a-z, 0-9, '-', '_'
// and '.', not starting with '.': the name goes into List-Id (RFC 2919
// list-label) as it is.
func CheckName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("%w: %q: 1 to %d characters", ErrName, name, MaxNameLen)
	}
	if name[0] == '.' || name[len(name)-1] == '.' || strings.Contains(name, "..") {
		return fmt.Errorf("%w: %q: dots only between other characters", ErrName, name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("%w: %q: only a-z, 0-9, '-', '_' and '.'", ErrName, name)
		}
	}
	return nil
}

// Has reports whether id is a member.
func (r *Roster) Has(id block.ID) bool { return slices.Contains(r.Members, id) }

// Add makes id a member; false if it was one.
func (r *Roster) Add(id block.ID) (bool, error) {
	if r.Has(id) {
		return false, nil
	}
	if len(r.Members) >= MaxMembers {
		return false, fmt.Errorf("%w: the list has %d, the most it may", ErrTooMany, MaxMembers)
	}
	r.Members = append(r.Members, id)
	return true, nil
}

// Remove drops id; false if it was no member.
func (r *Roster) Remove(id block.ID) bool {
	i := slices.Index(r.Members, id)
	if i < 0 {
		return false
	}
	r.Members = slices.Delete(r.Members, i, i+1)
	return true
}

// Encode returns the roster file: "flowmail-list 1", "name NAME", then
// "member fm1…" per member, each line ending in LF.
func (r *Roster) Encode() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\nname %s\n", rosterMagic, r.Name)
	for _, m := range r.Members {
		fmt.Fprintf(&b, "member %s\n", identity.FormatAddress(m))
	}
	return b.Bytes()
}

// ParseRoster parses a roster file. Exactly the bytes Encode writes are
// accepted: a duplicate member, an unknown line or a missing final LF is
// an error.
func ParseRoster(b []byte) (*Roster, error) {
	if len(b) > maxRosterSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrRoster, len(b), maxRosterSize)
	}
	if len(b) == 0 || b[len(b)-1] != '\n' {
		return nil, fmt.Errorf("%w: it must end with a line feed", ErrRoster)
	}
	lines := strings.Split(string(b[:len(b)-1]), "\n")
	if len(lines) < 2 || lines[0] != rosterMagic {
		return nil, fmt.Errorf("%w: the first line must be %q", ErrRoster, rosterMagic)
	}
	name, ok := strings.CutPrefix(lines[1], "name ")
	if !ok {
		return nil, fmt.Errorf("%w: the second line must be \"name NAME\"", ErrRoster)
	}
	if err := CheckName(name); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRoster, err)
	}
	r := &Roster{Name: name}
	if n := len(lines) - 2; n > MaxMembers {
		return nil, fmt.Errorf("%w: %w: %d lines of members, at most %d", ErrRoster, ErrTooMany, n, MaxMembers)
	}
	seen := make(map[block.ID]bool, len(lines)-2)
	for i, l := range lines[2:] {
		a, ok := strings.CutPrefix(l, "member ")
		if !ok {
			return nil, fmt.Errorf("%w: line %d: want \"member fm1…\"", ErrRoster, i+3)
		}
		id, err := identity.ParseAddress(a)
		if err != nil || identity.FormatAddress(id) != a {
			return nil, fmt.Errorf("%w: line %d: %q is not an address as this file writes it", ErrRoster, i+3, a)
		}
		if seen[id] {
			return nil, fmt.Errorf("%w: line %d: %s twice", ErrRoster, i+3, a)
		}
		seen[id] = true
		r.Members = append(r.Members, id)
	}
	return r, nil
}

// Load reads the roster file at path, at most maxRosterSize bytes.
func Load(path string) (*Roster, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(bufio.NewReader(f), int64(maxRosterSize)+1))
	if err != nil {
		return nil, err
	}
	return ParseRoster(b)
}

// Save writes the roster file at path, readable by its owner only: it
// says who is on the list.
func (r *Roster) Save(path string) error { return atomicfile.Write(path, r.Encode(), 0o600) }
