package mailbox

import (
	"sort"
	"strings"
)

// Flags are the flags of one message, kept in its Maildir file name after
// ":2," as the Maildir convention's letters (docs/PROTOCOL.md 16.1).
type Flags uint8

// The flags a message can carry, with their Maildir letters.
const (
	FlagDraft     Flags = 1 << iota // D
	FlagFlagged                     // F
	FlagForwarded                   // P (passed)
	FlagAnswered                    // R (replied)
	FlagSeen                        // S
	FlagDeleted                     // T (trashed)
)

// flagLetters is in ASCII order, the order the convention writes them in.
var flagLetters = [...]struct {
	f      Flags
	letter byte
}{{FlagDraft, 'D'}, {FlagFlagged, 'F'}, {FlagForwarded, 'P'}, {FlagAnswered, 'R'}, {FlagSeen, 'S'}, {FlagDeleted, 'T'}}

// Has reports whether every flag of g is set in f.
func (f Flags) Has(g Flags) bool { return f&g == g }

// info renders flags as the part of a file name after ":2,": the known
// letters and any letters other programs set (kept as found), in ASCII
// order.
func (f Flags) info(other string) string {
	var b []byte
	for _, l := range flagLetters {
		if f.Has(l.f) {
			b = append(b, l.letter)
		}
	}
	b = append(b, other...)
	sort.Slice(b, func(i, j int) bool { return b[i] < b[j] })
	return string(b)
}

// parseInfo reads the letters after ":2,": the flags known here, and the
// other letters (lower-case keywords of other programs, say), kept so a
// rename does not drop them.
func parseInfo(s string) (Flags, string) {
	var f Flags
	var other strings.Builder
next:
	for i := 0; i < len(s); i++ {
		for _, l := range flagLetters {
			if s[i] == l.letter {
				f |= l.f
				continue next
			}
		}
		if s[i] > ' ' && s[i] < 0x7f && s[i] != '/' && s[i] != ',' && s[i] != ':' {
			other.WriteByte(s[i])
		}
	}
	return f, other.String()
}
