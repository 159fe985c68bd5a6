package mailbuilder

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
)

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
		st.record(id, testNow.Add(time.Duration(i)*time.Second), outcomes[i], err)
	}
	st.lastList = testNow
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
		if st.done(id) == (outcomes[i] == OutcomeDeferred) {
			t.Fatalf("entry %d (%v): done = %v", i, outcomes[i], st.done(id))
		}
	}
	if e, _ := st.Lookup(ids[1]); len(e.Reason) != maxReason {
		t.Fatalf("reason of %d bytes kept, want it cut to %d", len(e.Reason), maxReason)
	}
	if d := st.deferred(); len(d) != 1 || d[0] != ids[3] {
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
	st.record(block.ID{1}, testNow, OutcomeDelivered, nil)
	st.prune(testNow.Add(stateKeep))
	if st.Len() != 1 {
		t.Fatal("pruned at the edge of stateKeep")
	}
	st.prune(testNow.Add(stateKeep + time.Second))
	if st.Len() != 0 {
		t.Fatal("not pruned after stateKeep")
	}
	if stateKeep <= replayWindow || replayWindow <= block.MaxLifetime {
		t.Fatal("entries must outlive the replay window, which must outlive blocks")
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

func TestReplayAfterPruneIsStale(t *testing.T) {
	s := sendOneMail(t, "once", "x")
	c, net := s.c, s.net
	mb := newMailbox(t, s.bob)
	if rep := mb.fetch(t, c, net, FetchOptions{Keep: true}); len(rep.Delivered) != 1 {
		t.Fatalf("%+v", rep)
	}
	// Long after, a node still (or again) lists the index block: the
	// entry is pruned at the end of this fetch ...
	late := testNow.Add(stateKeep + time.Hour)
	if rep := mb.fetch(t, c, net, FetchOptions{Keep: true, Now: late, SinceMargin: 2 * stateKeep}); rep.Skipped != 1 {
		t.Fatalf("%+v", rep)
	}
	// ... and the next one refuses the replay as stale instead of
	// delivering it again.
	rep := mb.fetch(t, c, net, FetchOptions{Keep: true, Now: late, SinceMargin: 2 * stateKeep})
	if len(rep.Delivered) != 0 || len(rep.Rejected) != 1 || !errors.Is(rep.Rejected[0], ErrStale) {
		t.Fatalf("%+v", rep)
	}
}
