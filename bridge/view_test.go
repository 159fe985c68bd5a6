package bridge

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowmail/flowmail/mailbox"
)

// The view is the bridge's own model of a client's selected folder; these
// tests need no IMAP library.

func TestViewTellsExpungesFlagsAndNewMailInOrder(t *testing.T) {
	s, err := mailbox.OpenStore(t.TempDir(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f, _ := s.Folder(mailbox.Inbox)
	for i := range 4 {
		if _, err := f.Append(strings.NewReader(fmt.Sprintf("Subject: %d\n\nx\n", i)), 0, time.Time{}, 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	v := newView(f, false)
	other := newView(f, false)
	if err := f.Remove([]uint32{2}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.SetFlags([]uint32{3}, mailbox.FlagsAdd, mailbox.FlagSeen); err != nil {
		t.Fatal(err)
	}
	f.Append(strings.NewReader("Subject: new\n\nx\n"), 0, time.Time{}, 1<<20)

	// While sequence numbers must not move, the expunge waits.
	ups := v.refresh(false)
	if got := fmt.Sprint(ups); got != fmt.Sprint([]update{
		{kind: updFlags, seq: 3, uid: 3, flags: mailbox.FlagSeen},
		{kind: updExists, count: 5},
	}) {
		t.Fatalf("without expunges: %v", got)
	}
	if idx := v.pick(true, []numRange{{1, 0}}); fmt.Sprint(idx) != "[0 2 3 4]" {
		t.Fatalf("pick skips the gone message: %v", idx)
	}
	ups = v.refresh(true)
	if got := fmt.Sprint(ups); got != fmt.Sprint([]update{{kind: updExpunge, seq: 2}}) {
		t.Fatalf("then: %v", got)
	}
	// Another view told everything at once: expunge first, then the flag
	// at its new sequence number, then the count.
	ups = other.refresh(true)
	if got := fmt.Sprint(ups); got != fmt.Sprint([]update{
		{kind: updExpunge, seq: 2},
		{kind: updFlags, seq: 2, uid: 3, flags: mailbox.FlagSeen},
		{kind: updExists, count: 4},
	}) {
		t.Fatalf("all at once: %v", got)
	}
	if idx := other.pick(false, []numRange{{0, 0}}); fmt.Sprint(idx) != "[3]" {
		t.Fatalf("* is the last message: %v", idx)
	}
	if idx := other.pick(true, []numRange{{4, 5}}); fmt.Sprint(idx) != "[2 3]" {
		t.Fatalf("UIDs 4:5: %v", idx)
	}
}
