package mailbox

import (
	"strconv"
	"strings"
)

// fileName is a Maildir file name taken apart (docs/PROTOCOL.md 16.1):
//
//	<unique>[,<other fields>][,U=<uid>][,V=<uidvalidity>][,W=<size with CRLF>][:2,<flags>]
type fileName struct {
	base     string   // the unique part, up to the first ',' or ':'
	fields   []string // ",K=V" fields of other programs, kept as found
	uid      uint32   // 0: none
	validity uint32   // 0: none
	crlfSize int64    // -1: none
	info     bool     // has ":2,"
	flags    Flags
	other    string // flag letters of other programs
}

func parseFileName(name string) fileName {
	n := fileName{crlfSize: -1}
	if i := strings.LastIndex(name, ":2,"); i >= 0 {
		n.info = true
		n.flags, n.other = parseInfo(name[i+3:])
		name = name[:i]
	} else if i := strings.IndexByte(name, ':'); i >= 0 {
		name = name[:i] // an info of another version: dropped
	}
	parts := strings.Split(name, ",")
	n.base = parts[0]
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "U":
			if u, err := parseUID(v); err == nil {
				n.uid = u
				continue
			}
		case "V":
			if u, err := parseUID(v); err == nil {
				n.validity = u
				continue
			}
		case "W":
			if s, err := strconv.ParseInt(v, 10, 64); err == nil && s >= 0 {
				n.crlfSize = s
				continue
			}
		}
		if p != "" {
			n.fields = append(n.fields, p)
		}
	}
	return n
}

// String puts the name together again, with ":2," and the flags.
func (n fileName) String() string {
	var b strings.Builder
	b.WriteString(n.base)
	for _, f := range n.fields {
		b.WriteByte(',')
		b.WriteString(f)
	}
	if n.uid != 0 {
		b.WriteString(",U=" + strconv.FormatUint(uint64(n.uid), 10))
	}
	if n.validity != 0 {
		b.WriteString(",V=" + strconv.FormatUint(uint64(n.validity), 10))
	}
	if n.crlfSize >= 0 {
		b.WriteString(",W=" + strconv.FormatInt(n.crlfSize, 10))
	}
	b.WriteString(":2,")
	b.WriteString(n.flags.info(n.other))
	return b.String()
}
