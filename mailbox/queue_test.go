package mailbox

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
)

func TestQueueKeepsAcceptedMailAndItsProgress(t *testing.T) {
	dir := t.TempDir()
	q, err := OpenQueue(dir)
	if err != nil {
		t.Fatal(err)
	}
	msg := "From: x\r\n\r\nhello\r\n"
	sub, err := q.Add(strings.NewReader(msg), 1<<20, Submission{To: []block.ID{{1}, {2}}, Bcc: []block.ID{{3}}}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Add(&failingReader{n: 10}, 1<<20, Submission{To: []block.ID{{1}}}, testNow); err == nil {
		t.Fatal("a broken stream was accepted")
	}
	if _, err := q.Add(strings.NewReader(msg), 5, Submission{To: []block.ID{{1}}}, testNow); !errors.Is(err, ErrTooBig) {
		t.Fatalf("over the limit: %v", err)
	}
	// What a crash leaves: a new Queue on the same directory.
	q, _ = OpenQueue(dir)
	ids, err := q.List()
	if err != nil || len(ids) != 1 || ids[0] != sub.ID {
		t.Fatalf("list: %v %v", ids, err)
	}
	got, r, err := q.Open(sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r)
	r.Close()
	if string(body) != msg || got.Seed != sub.Seed || got.Parts() != 2 || got.To[1] != (block.ID{2}) || !got.Accepted.Equal(time.Unix(testNow.Unix(), 0)) || got.Size != int64(len(msg)) {
		t.Fatalf("reopened: %+v %q", got, body)
	}
	st, err := q.State(got)
	if err != nil || len(st.Done) != 2 || st.Done[0] {
		t.Fatalf("fresh state: %+v %v", st, err)
	}
	st.Done[0], st.Attempts, st.Err, st.Next = true, 2, "no route\nto host", testNow
	if err := q.SaveState(got, st); err != nil {
		t.Fatal(err)
	}
	st2, err := q.State(got)
	if err != nil || !st2.Done[0] || st2.Done[1] || st2.Attempts != 2 || st2.Err != "no route to host" || !st2.Next.Equal(testNow) {
		t.Fatalf("saved state: %+v %v", st2, err)
	}
	// delivery.Send's resume files for two parts, as a send cut short
	// leaves them.
	for part := range got.Parts() {
		if err := os.WriteFile(q.SendState(sub.ID, part), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.RemoveSendState(sub.ID, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(q.SendState(sub.ID, 1)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("part 1's send state after RemoveSendState: %v", err)
	}
	if err := q.Remove(sub.ID); err != nil {
		t.Fatal(err)
	}
	if ids, _ := q.List(); len(ids) != 0 {
		t.Fatalf("after remove: %v", ids)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("files left after remove: %v", left)
	}
}

func FuzzQueueHeader(f *testing.F) {
	s := Submission{Accepted: testNow, To: []block.ID{{1}}, Bcc: []block.ID{{2}, {3}}}
	f.Add(s.encodeHeader())
	f.Add([]byte("flowmail-outbox 1\naccepted 1\nseed " + strings.Repeat("0", 64) + "\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		sub, err := decodeQueueHeader(b)
		if err != nil {
			if !errors.Is(err, ErrQueueEntry) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if !bytes.Equal(sub.encodeHeader(), b) {
			t.Fatalf("%q decodes but encodes as %q", b, sub.encodeHeader())
		}
	})
}

func FuzzQueueState(f *testing.F) {
	f.Add([]byte("flowmail-outbox-state 1\nattempts 3\nnext 1772323200\ndone 0\ndone 2\nerror timeout\n"), 3)
	f.Add([]byte("flowmail-outbox-state 1\nattempts 0\nnext 0\n"), 1)
	f.Fuzz(func(t *testing.T, b []byte, parts int) {
		if parts < 1 || parts > MaxQueueRecipients+1 {
			return
		}
		st, err := decodeQueueState(b, parts)
		if err != nil {
			if !errors.Is(err, ErrQueueEntry) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if !bytes.Equal(st.encode(), b) {
			t.Fatalf("%q decodes but encodes as %q", b, st.encode())
		}
	})
}

// TestQueueStateKeepsAnyErrorDecodable: whatever error text a failure
// carries, the state file written decodes again: other bytes as they
// were (even invalid UTF-8), control bytes as spaces, a long valid one
// cut at a character's start.
func TestQueueStateKeepsAnyErrorDecodable(t *testing.T) {
	long := strings.Repeat("a", maxQueueError-1) + "é and more"
	for _, tc := range []struct{ err, want string }{
		{"dial: \x83 refused", "dial: \x83 refused"},
		{"line\nbreak\x7f", "line break "},
		{long, strings.Repeat("a", maxQueueError-1)},
		{strings.Repeat("€", maxQueueError), strings.Repeat("€", maxQueueError/3)},
	} {
		st := QueueState{Done: []bool{true, false}, Attempts: 2, Err: tc.err}
		b := st.encode()
		got, err := decodeQueueState(b, 2)
		if err != nil {
			t.Fatalf("state with error %q: %v", tc.err, err)
		}
		if got.Err != tc.want || got.Attempts != 2 || !got.Done[0] {
			t.Fatalf("state with error %q decodes as %+v, want error %q", tc.err, got, tc.want)
		}
		if again := got.encode(); !bytes.Equal(again, b) {
			t.Fatalf("state with error %q re-encodes as %q, was %q", tc.err, again, b)
		}
	}
}
