package mailbox

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/flowmail/flowmail/internal/vectors"
)

// The local formats of docs/PROTOCOL.md section 16, as vectors: what the
// bridge writes into a Maildir and its outbox, for other implementations
// (and other programs) to read the same way.

func checkLocalVector(v vectors.Vector) (map[string]string, string) {
	switch v.Function {
	case "DecodeUIDFile":
		u, err := decodeUIDFile([]byte(v.Input))
		if err != nil {
			return nil, vectors.RuleName(err, ErrUIDFile)
		}
		return map[string]string{"uidvalidity": fmt.Sprint(u.Validity), "uidnext": fmt.Sprint(u.Next)}, ""
	case "DecodeFolderList":
		l, err := decodeFolderList([]byte(v.Input))
		if err != nil {
			return nil, vectors.RuleName(err, ErrUIDFile)
		}
		out := map[string]string{"lastvalidity": fmt.Sprint(l.LastValidity)}
		for _, e := range l.Entries {
			out[e.Name] = fmt.Sprintf("%d %d", e.Validity, e.Next)
		}
		return out, ""
	case "ParseFileName":
		n := parseFileName(v.Input)
		return map[string]string{
			"base": n.base, "uid": fmt.Sprint(n.uid), "uidvalidity": fmt.Sprint(n.validity),
			"crlf_size": fmt.Sprint(n.crlfSize), "flags": n.flags.info(n.other), "other_fields": strings.Join(n.fields, ","),
		}, ""
	case "DecodeOutboxHeader":
		s, err := decodeQueueHeader([]byte(v.Input))
		if err != nil {
			return nil, vectors.RuleName(err, ErrQueueEntry)
		}
		return map[string]string{"accepted": fmt.Sprint(s.Accepted.Unix()), "seed": fmt.Sprintf("%x", s.Seed), "to": fmt.Sprint(len(s.To)), "bcc": fmt.Sprint(len(s.Bcc))}, ""
	case "DecodeOutboxState":
		parts, _ := strconv.Atoi(v.Params["parts"])
		st, err := decodeQueueState([]byte(v.Input), parts)
		if err != nil {
			return nil, vectors.RuleName(err, ErrQueueEntry)
		}
		return map[string]string{"attempts": fmt.Sprint(st.Attempts), "next": fmt.Sprint(st.Next.Unix()), "done": fmt.Sprint(st.Done), "error": st.Err}, ""
	}
	return nil, "unknown function " + v.Function
}

func genLocalVectors() vectors.File {
	id := strings.Repeat("ab", 32)
	seed := strings.Repeat("01", 32)
	vs := []vectors.Vector{
		{Name: "uid_file", Function: "DecodeUIDFile", Input: "flowmail-uids 1\nuidvalidity 1772323200\nuidnext 42\n", Note: "16.2"},
		{Name: "uid_file_leading_zero", Function: "DecodeUIDFile", Input: "flowmail-uids 1\nuidvalidity 01772323200\nuidnext 42\n", Error: "damaged UID file", Note: "16.2: canonical decimal"},
		{Name: "uid_file_zero_next", Function: "DecodeUIDFile", Input: "flowmail-uids 1\nuidvalidity 1772323200\nuidnext 0\n", Error: "damaged UID file", Note: "16.2: from 1"},
		{Name: "uid_file_over_32_bits", Function: "DecodeUIDFile", Input: "flowmail-uids 1\nuidvalidity 4294967296\nuidnext 1\n", Error: "damaged UID file", Note: "16.2: to 2^32-1"},
		{Name: "uid_file_crlf", Function: "DecodeUIDFile", Input: "flowmail-uids 1\r\nuidvalidity 1\r\nuidnext 1\r\n", Error: "damaged UID file", Note: "16.2: LF-terminated lines"},
		{Name: "uid_file_trailing_line", Function: "DecodeUIDFile", Input: "flowmail-uids 1\nuidvalidity 1\nuidnext 1\nextra\n", Error: "damaged UID file", Note: "16.2: exactly three lines"},
		{Name: "folder_list", Function: "DecodeFolderList", Input: "flowmail-folders 1\nlastvalidity 1772323203\n1772323200 5 Archive\n1772323203 17 INBOX\n1772323201 1 Work.Projects\n", Note: "16.3"},
		{Name: "folder_list_validity_above_last", Function: "DecodeFolderList", Input: "flowmail-folders 1\nlastvalidity 5\n6 1 Sent\n", Error: "damaged UID file", Note: "16.3: no line above lastvalidity"},
		{Name: "folder_list_bad_name", Function: "DecodeFolderList", Input: "flowmail-folders 1\nlastvalidity 5\n5 1 Work..Projects\n", Error: "damaged UID file", Note: "16.1: no empty level"},
		{Name: "folder_list_twice", Function: "DecodeFolderList", Input: "flowmail-folders 1\nlastvalidity 5\n4 1 Sent\n5 1 Sent\n", Error: "damaged UID file", Note: "16.3: each folder once"},
		{Name: "file_name_numbered", Function: "ParseFileName", Input: "1772323200.M123456P42R0011223344556677.host,U=7,V=1772323200,W=1234:2,FRS", Note: "16.1"},
		{Name: "file_name_delivered", Function: "ParseFileName", Input: "1772323200.M123456P42R0011223344556677.host", Note: "16.1: new/, not numbered yet"},
		{Name: "file_name_other_programs", Function: "ParseFileName", Input: "1772323200.x,S=1200,U=3,V=9,W=1250:2,Sa", Note: "16.1: fields and flag letters of others kept"},
		{Name: "outbox_header", Function: "DecodeOutboxHeader", Input: "flowmail-outbox 1\naccepted 1772323200\nseed " + seed + "\nto " + id + "\nbcc " + strings.Repeat("cd", 32) + "\n\n", Note: "16.5"},
		{Name: "outbox_header_to_after_bcc", Function: "DecodeOutboxHeader", Input: "flowmail-outbox 1\naccepted 1772323200\nseed " + seed + "\nbcc " + id + "\nto " + strings.Repeat("cd", 32) + "\n\n", Error: "damaged outbox entry", Note: "16.5: to lines first"},
		{Name: "outbox_header_no_recipient", Function: "DecodeOutboxHeader", Input: "flowmail-outbox 1\naccepted 1772323200\nseed " + seed + "\n\n", Error: "damaged outbox entry", Note: "16.5: at least one recipient"},
		{Name: "outbox_header_upper_hex", Function: "DecodeOutboxHeader", Input: "flowmail-outbox 1\naccepted 1772323200\nseed " + strings.ToUpper(id) + "\nto " + id + "\n\n", Error: "damaged outbox entry", Note: "16.5: lower-case hex"},
		{Name: "outbox_state", Function: "DecodeOutboxState", Input: "flowmail-outbox-state 1\nattempts 2\nnext 1772326800\ndone 0\ndone 2\nerror no route to any node\n", Params: map[string]string{"parts": "3"}, Note: "16.5"},
		{Name: "outbox_state_part_out_of_range", Function: "DecodeOutboxState", Input: "flowmail-outbox-state 1\nattempts 0\nnext 0\ndone 3\n", Params: map[string]string{"parts": "3"}, Error: "damaged outbox entry", Note: "16.5: parts 0..n-1"},
	}
	return vectors.File{Description: "Local formats of the mail store and the bridge's outbox (docs/PROTOCOL.md section 16).", Vectors: vs}
}

func TestLocalFormatVectors(t *testing.T) {
	vectors.Check(t, "mailbox_local.json", genLocalVectors, checkLocalVector)
}
