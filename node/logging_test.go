package node

import (
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/transport"
)

// recorder keeps every JSON record written to it.
type recorder struct {
	mu      sync.Mutex
	records []map[string]any
	bad     []string
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, line := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			r.bad = append(r.bad, line)
			continue
		}
		r.records = append(r.records, rec)
	}
	return len(p), nil
}

// TestEveryRecordNamesItsComponent: the node hands each component a
// logger with a "component" attribute, so an operator can tell the
// DHT's records from the store's and the transport's.
func TestEveryRecordNamesItsComponent(t *testing.T) {
	ctx := hangGuard(t)
	rec := &recorder{}
	log := slog.New(slog.NewJSONHandler(rec, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a := startNode(t, ctx, Config{DataDir: t.TempDir(), Logger: log})
	b := startNode(t, ctx, Config{DataDir: t.TempDir(), Logger: log, Bootstrap: []transport.Contact{a.Contact()}})
	// b leaves, and a node of another network takes its address: a's
	// next lookup asks it (the DHT logs the failed request) and it
	// refuses a (its transport logs the refusal).
	addr := b.Addr()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	startNode(t, ctx, Config{DataDir: t.TempDir(), Logger: log, Network: "elsewhere", Listen: addr.String()})
	if _, err := a.Get(ctx, block.Sum([]byte("nobody has this"))); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get of a missing block: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.bad) > 0 {
		t.Fatalf("records that are not JSON: %q", rec.bad)
	}
	seen := map[string]bool{}
	for _, r := range rec.records {
		c, ok := r["component"].(string)
		if !ok {
			t.Errorf("a record without a component: %v", r)
			continue
		}
		seen[c] = true
	}
	var got []string
	for c := range seen {
		got = append(got, c)
	}
	sort.Strings(got)
	for _, want := range []string{"node", "kademlia", "transport"} {
		if !slices.Contains(got, want) {
			t.Errorf("no record from %s; components seen: %v", want, got)
		}
	}
}
