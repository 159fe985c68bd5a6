package mailbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/internal/atomicfile"
)

// Outcome is what became of one listed index block.
type Outcome uint8

// Outcomes remembered in State. Deferred mails are retried; the others
// are never fetched again.
const (
	OutcomeDelivered Outcome = iota + 1
	OutcomeRejected          // failed a check: under-ground, bad signature, ...
	OutcomeNotForMe          // sealed to someone else whose ID shares my prefix
	OutcomeDeferred          // failed for now (shards missing, network): retried
	// OutcomeMissing: listed, but its index block could not be fetched.
	// Retried only if listed again: IDs alone cost a liar nothing, so a
	// LIST full of made-up ones must not become a retry list.
	OutcomeMissing
)

var outcomeNames = map[Outcome]string{
	OutcomeDelivered: "delivered", OutcomeRejected: "rejected",
	OutcomeNotForMe: "not-for-me", OutcomeDeferred: "deferred",
	OutcomeMissing: "missing",
}

func (o Outcome) String() string {
	if s, ok := outcomeNames[o]; ok {
		return s
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// StateFile is the name of the processed set in the directory given to
// OpenState.
const StateFile = "fetch-state.json"

// RememberFor is how long an entry is remembered after its block was
// first seen (spec 9.6: MaxLifetime + 2 days). The block cannot outlive
// block.MaxLifetime, and recipients refuse envelopes signed more than
// MaxLifetime + 1 day ago, so a block re-stored after its entry was
// dropped is refused as stale, never delivered twice.
const RememberFor = block.MaxLifetime + 48*time.Hour

// maxStateFile bounds what OpenState reads: far above what 30 days of
// index blocks at any difficulty can fill.
const maxStateFile = 256 << 20

// maxStateEntries bounds the processed set, so the file stays far below
// maxStateFile (an entry takes about 200 bytes) however many IDs a lying
// node lists. Save forgets the oldest entries that are not deliveries
// first; forgetting one costs at most a second look at it.
var maxStateEntries = 200_000 // a variable for tests

// maxReason bounds the remembered text of a rejection.
const maxReason = 300

// StateEntry is one remembered index block.
type StateEntry struct {
	Seen     time.Time // first listed
	Outcome  Outcome
	Reason   string // for rejected and deferred mails, the last error
	Attempts int    // how many times it was deferred
	Message  string // for deliveries: the key of the signed mail (RecordDelivery)
}

// State is the processed set of one recipient: every index block it has
// listed and what became of it, and the time of the last complete LIST.
// It lives in one file that is rewritten atomically. One process at a
// time may hold it; OpenState takes a lock that Close releases.
type State struct {
	path     string
	unlock   func() error
	lastList time.Time
	entries  map[block.ID]StateEntry
	messages map[string]block.ID // delivered mails by their key
}

// stateJSON is the file format.
type stateJSON struct {
	Version  int              `json:"version"`
	LastList int64            `json:"last_list"` // Unix seconds; 0: never listed
	Entries  []stateEntryJSON `json:"entries"`   // sorted by ID
}

type stateEntryJSON struct {
	ID       string `json:"id"`   // hex
	Seen     int64  `json:"seen"` // Unix seconds
	Outcome  string `json:"outcome"`
	Reason   string `json:"reason,omitempty"`
	Attempts int    `json:"attempts,omitempty"`
	Message  string `json:"message,omitempty"`
}

// OpenState reads the processed set from dir (created with mode 0700 if
// missing) and locks it against other processes until Close.
func OpenState(dir string) (*State, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mailbox: state directory: %w", err)
	}
	unlock, err := lockDir(filepath.Join(dir, StateFile+".lock"))
	if err != nil {
		return nil, err
	}
	s := &State{path: filepath.Join(dir, StateFile), unlock: unlock, entries: map[block.ID]StateEntry{}, messages: map[string]block.ID{}}
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		unlock()
		return nil, fmt.Errorf("mailbox: state: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxStateFile+1))
	f.Close()
	if err == nil {
		err = s.decode(b)
	}
	if err != nil {
		unlock()
		return nil, fmt.Errorf("mailbox: state file %s: %w", s.path, err)
	}
	return s, nil
}

func (s *State) decode(b []byte) error {
	if len(b) > maxStateFile {
		return fmt.Errorf("larger than %d bytes", maxStateFile)
	}
	var j stateJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	if j.Version != 1 {
		return fmt.Errorf("version %d, this code reads 1", j.Version)
	}
	if j.LastList != 0 {
		s.lastList = time.Unix(j.LastList, 0)
	}
	for _, e := range j.Entries {
		id, err := block.ParseHexID(e.ID)
		if err != nil {
			return err
		}
		o := outcomeByName(e.Outcome)
		if o == 0 {
			return fmt.Errorf("entry %s: unknown outcome %q", e.ID, e.Outcome)
		}
		if e.Attempts < 0 {
			return fmt.Errorf("entry %s: %d attempts", e.ID, e.Attempts)
		}
		s.entries[id] = StateEntry{Seen: time.Unix(e.Seen, 0), Outcome: o, Reason: e.Reason, Attempts: e.Attempts, Message: e.Message}
		if e.Message != "" {
			s.messages[e.Message] = id
		}
	}
	return nil
}

func (s *State) encode() ([]byte, error) {
	j := stateJSON{Version: 1, Entries: make([]stateEntryJSON, 0, len(s.entries))}
	if !s.lastList.IsZero() {
		j.LastList = s.lastList.Unix()
	}
	for id, e := range s.entries {
		j.Entries = append(j.Entries, stateEntryJSON{ID: id.String(), Seen: e.Seen.Unix(), Outcome: e.Outcome.String(), Reason: e.Reason, Attempts: e.Attempts, Message: e.Message})
	}
	sort.Slice(j.Entries, func(a, b int) bool { return j.Entries[a].ID < j.Entries[b].ID })
	return json.MarshalIndent(j, "", " ")
}

func outcomeByName(name string) Outcome {
	for o, n := range outcomeNames {
		if n == name {
			return o
		}
	}
	return 0
}

// Lookup returns what is remembered of id.
func (s *State) Lookup(id block.ID) (StateEntry, bool) {
	e, ok := s.entries[id]
	return e, ok
}

// Len returns how many index blocks are remembered.
func (s *State) Len() int { return len(s.entries) }

// LastList returns the time of the last complete LIST, zero if none.
func (s *State) LastList() time.Time { return s.lastList }

// SetLastList records the time of a complete LIST, from which the next
// one starts.
func (s *State) SetLastList(t time.Time) { s.lastList = t }

// Settled reports whether id needs no further work when listed: it is
// remembered with an outcome other than deferred or missing.
func (s *State) Settled(id block.ID) bool {
	e, ok := s.entries[id]
	return ok && e.Outcome != OutcomeDeferred && e.Outcome != OutcomeMissing
}

// Deferred returns the IDs waiting for a retry, in ascending order.
func (s *State) Deferred() []block.ID {
	var ids []block.ID
	for id, e := range s.entries {
		if e.Outcome == OutcomeDeferred {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(a, b int) bool { return block.Less(ids[a], ids[b]) })
	return ids
}

// Record remembers the outcome for id, keeping the first time it was
// seen, counting deferrals and misses, and keeping err's text (cut short)
// as the reason.
func (s *State) Record(id block.ID, now time.Time, o Outcome, err error) {
	e, ok := s.entries[id]
	if !ok {
		e.Seen = now
	}
	e.Outcome, e.Reason = o, ""
	if o == OutcomeDeferred || o == OutcomeMissing {
		e.Attempts++
	}
	if err != nil {
		e.Reason = err.Error()
		if len(e.Reason) > maxReason {
			e.Reason = e.Reason[:maxReason]
		}
	}
	s.entries[id] = e
}

// RecordDelivery remembers which signed mail (named by key, the caller's
// choice) the delivered index block id held.
func (s *State) RecordDelivery(id block.ID, key string) {
	e := s.entries[id]
	e.Message = key
	s.entries[id] = e
	s.messages[key] = id
}

// DeliveredAs returns the index block the signed mail named key was
// delivered from.
func (s *State) DeliveredAs(key string) (block.ID, bool) {
	id, ok := s.messages[key]
	return id, ok
}

// forget drops id and what it delivered.
func (s *State) forget(id block.ID) {
	if m := s.entries[id].Message; m != "" && s.messages[m] == id {
		delete(s.messages, m)
	}
	delete(s.entries, id)
}

// Prune forgets entries first seen more than RememberFor before now:
// their blocks are gone and a replay of them would be refused as stale.
func (s *State) Prune(now time.Time) {
	for id, e := range s.entries {
		if now.Sub(e.Seen) > RememberFor {
			s.forget(id)
		}
	}
}

// shrink forgets entries beyond maxStateEntries: the oldest missing ones
// first, then other non-deliveries, oldest first. Deliveries are kept, as
// forgetting one could deliver the mail twice.
func (s *State) shrink() {
	over := len(s.entries) - maxStateEntries
	if over <= 0 {
		return
	}
	type aged struct {
		id   block.ID
		rank int // 0 missing, 1 other non-delivery
		seen time.Time
	}
	var drop []aged
	for id, e := range s.entries {
		switch e.Outcome {
		case OutcomeDelivered:
		case OutcomeMissing:
			drop = append(drop, aged{id, 0, e.Seen})
		default:
			drop = append(drop, aged{id, 1, e.Seen})
		}
	}
	sort.Slice(drop, func(a, b int) bool {
		if drop[a].rank != drop[b].rank {
			return drop[a].rank < drop[b].rank
		}
		return drop[a].seen.Before(drop[b].seen)
	})
	for _, d := range drop[:min(over, len(drop))] {
		s.forget(d.id)
	}
}

// Save rewrites the file atomically (internal/atomicfile), first
// forgetting what lies beyond maxStateEntries.
func (s *State) Save() error {
	s.shrink()
	b, err := s.encode()
	if err != nil {
		return fmt.Errorf("mailbox: state: %w", err)
	}
	if err := atomicfile.Write(s.path, b, 0o600); err != nil {
		return fmt.Errorf("mailbox: saving state: %w", err)
	}
	return nil
}

// Close releases the lock. It does not save.
func (s *State) Close() error {
	if s.unlock == nil {
		return nil
	}
	err := s.unlock()
	s.unlock = nil
	return err
}
