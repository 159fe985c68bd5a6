package mailbox

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
)

// testNow is the clock of every test: 2026-03-01T00:00:00Z.
var testNow = time.Unix(1772323200, 0)

func TestStateSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	ids := []block.ID{{1}, {2}, {3}, {4}}
	outcomes := []Outcome{OutcomeDelivered, OutcomeRejected, OutcomeNotForMe, OutcomeDeferred}
	for i, id := range ids {
		var err error
		if outcomes[i] == OutcomeRejected {
			err = errors.New(strings.Repeat("x", 2*maxReason))
		}
		st.Record(id, testNow.Add(time.Duration(i)*time.Second), outcomes[i], err)
	}
	st.SetLastList(testNow)
	if err := st.Save(); err != nil {
		t.Fatal(err)
	}
	st.Close()

	st, err = OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.Len() != 4 || !st.LastList().Equal(testNow) {
		t.Fatalf("reopened: %d entries, last list %v", st.Len(), st.LastList())
	}
	for i, id := range ids {
		e, ok := st.Lookup(id)
		if !ok || e.Outcome != outcomes[i] || !e.Seen.Equal(testNow.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("entry %d: %+v", i, e)
		}
		if st.Settled(id) == (outcomes[i] == OutcomeDeferred) {
			t.Fatalf("entry %d (%v): done = %v", i, outcomes[i], st.Settled(id))
		}
	}
	if e, _ := st.Lookup(ids[1]); len(e.Reason) != maxReason {
		t.Fatalf("reason of %d bytes kept, want it cut to %d", len(e.Reason), maxReason)
	}
	if d := st.Deferred(); len(d) != 1 || d[0] != ids[3] {
		t.Fatalf("deferred = %v", d)
	}
	raw, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		t.Fatal(err)
	}
	var j stateJSON
	if err := json.Unmarshal(raw, &j); err != nil || j.Version != 1 || len(j.Entries) != 4 || j.Entries[0].Outcome != "delivered" {
		t.Fatalf("file: %v %+v", err, j)
	}
	if fi, _ := os.Stat(filepath.Join(dir, StateFile)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %v", fi.Mode())
	}
}

func TestStateIsHeldByOneProcess(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenState(dir); err == nil || !strings.Contains(err.Error(), "held by another") {
		t.Fatalf("second OpenState: %v", err)
	}
	st.Close()
	st, err = OpenState(dir)
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	st.Close()
}

func TestStatePrunesAfterReplayWindow(t *testing.T) {
	st, err := OpenState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.Record(block.ID{1}, testNow, OutcomeDelivered, nil)
	st.Prune(testNow.Add(RememberFor))
	if st.Len() != 1 {
		t.Fatal("pruned at the edge of RememberFor")
	}
	st.Prune(testNow.Add(RememberFor + time.Second))
	if st.Len() != 0 {
		t.Fatal("not pruned after RememberFor")
	}
}

func TestStateRefusesDamagedFile(t *testing.T) {
	for name, content := range map[string]string{
		"not JSON":        "{",
		"other version":   `{"version":2,"entries":[]}`,
		"bad ID":          `{"version":1,"entries":[{"id":"00","seen":1,"outcome":"delivered"}]}`,
		"unknown outcome": `{"version":1,"entries":[{"id":"` + strings.Repeat("00", 32) + `","seen":1,"outcome":"lost"}]}`,
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, StateFile), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if st, err := OpenState(dir); err == nil {
			st.Close()
			t.Errorf("%s: opened", name)
		}
	}
}

func TestStateStaysBoundedAndKeepsDeliveries(t *testing.T) {
	old := maxStateEntries
	maxStateEntries = 100
	defer func() { maxStateEntries = old }()
	st, err := OpenState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	id := func(i int) (x block.ID) { binary.BigEndian.PutUint64(x[:8], uint64(i)+1); return x }
	for i := range 60 {
		st.Record(id(i), testNow.Add(time.Duration(i)*time.Second), OutcomeDelivered, nil)
	}
	for i := 60; i < 300; i++ {
		st.Record(id(i), testNow.Add(time.Duration(i)*time.Second), OutcomeMissing, errors.New("not found"))
	}
	if err := st.Save(); err != nil {
		t.Fatal(err)
	}
	if st.Len() != 100 {
		t.Fatalf("%d entries after Save, want the cap of 100", st.Len())
	}
	for i := range 60 {
		if e, ok := st.Lookup(id(i)); !ok || e.Outcome != OutcomeDelivered {
			t.Fatalf("delivery %d forgotten", i)
		}
	}
	if _, ok := st.Lookup(id(299)); !ok {
		t.Fatal("the newest missing entry was dropped before older ones")
	}
	if _, ok := st.Lookup(id(60)); ok {
		t.Fatal("the oldest missing entry was kept")
	}
}

func FuzzStateDecode(f *testing.F) {
	f.Add([]byte(`{"version":1,"last_list":5,"entries":[{"id":"` + block.ID{1}.String() + `","seen":3,"outcome":"rejected","reason":"x"}]}`))
	f.Add([]byte(`{"version":1,"entries":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := &State{entries: map[block.ID]StateEntry{}}
		if s.decode(b) != nil {
			return
		}
		enc, err := s.encode()
		if err != nil {
			t.Fatal(err)
		}
		s2 := &State{entries: map[block.ID]StateEntry{}}
		if err := s2.decode(enc); err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
		if enc2, _ := s2.encode(); !bytes.Equal(enc, enc2) {
			t.Fatal("state encoding is not stable")
		}
	})
}
