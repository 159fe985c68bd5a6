package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/record"
)

// slotsAsked is a recordRefresher that records the slots it is asked to
// re-store; it fails for the slots in fail.
type slotsAsked struct {
	asked []block.ID
	fail  map[block.ID]bool
}

func (f *slotsAsked) RefreshRecord(_ context.Context, slot block.ID, lifetime time.Duration) (*record.Record, int, error) {
	f.asked = append(f.asked, slot)
	if lifetime != block.MaxLifetime {
		return nil, 0, fmt.Errorf("lifetime %v, want a fresh %v", lifetime, block.MaxLifetime)
	}
	if f.fail[slot] {
		return nil, 0, errors.New("test: no log")
	}
	return nil, 3, nil
}

// Each fetch re-stores at most refreshPerFetch contacts' key logs, the
// least recently re-stored first, each at most once per refreshEvery; a
// log that cannot be re-stored does not hold the others back.
func TestFetchReStoresContactsKeyLogsBounded(t *testing.T) {
	home := t.TempDir()
	book := &contactBook{Contacts: map[string]string{}, Pins: map[string]*contactPin{}}
	const contacts = 2*refreshPerFetch + 3
	addrs := make([]block.ID, contacts)
	for i := range addrs {
		addrs[i] = block.Sum([]byte{byte(i)})
		book.Pins[identity.FormatAddress(addrs[i])] = &contactPin{Keys: []string{"00"}}
	}
	if err := book.save(home); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	d := &slotsAsked{fail: map[block.ID]bool{record.KeyLogSlot(addrs[0]): true}}
	seen := map[block.ID]int{}
	for round := range 3 {
		before := len(d.asked)
		refreshContactLogs(context.Background(), d, home, now.Add(time.Duration(round)*time.Minute), log)
		if got := len(d.asked) - before; got != min(refreshPerFetch, contacts-round*refreshPerFetch) {
			t.Fatalf("fetch %d re-stored %d key logs, want at most %d and every due one", round, got, refreshPerFetch)
		}
		for _, s := range d.asked[before:] {
			seen[s]++
		}
	}
	for _, a := range addrs {
		if seen[record.KeyLogSlot(a)] != 1 {
			t.Fatalf("within a day, %s was re-stored %d times, want once", identity.FormatAddress(a), seen[record.KeyLogSlot(a)])
		}
	}
	// A day later every contact is due again, the oldest first.
	before := len(d.asked)
	refreshContactLogs(context.Background(), d, home, now.Add(refreshEvery+time.Minute), log)
	if got := len(d.asked) - before; got != refreshPerFetch {
		t.Fatalf("a day later: %d key logs re-stored, want %d", got, refreshPerFetch)
	}
	first := map[block.ID]bool{}
	for _, s := range d.asked[:refreshPerFetch] {
		first[s] = true
	}
	for _, s := range d.asked[before:] {
		if !first[s] {
			t.Fatalf("a day later %v was re-stored before the ones re-stored longest ago", s)
		}
	}
	b, err := loadContacts(home)
	if err != nil {
		t.Fatal(err)
	}
	if p := b.Pins[identity.FormatAddress(addrs[0])]; p.Refreshed == "" || len(p.Keys) != 1 {
		t.Fatalf("the pin after re-storing: %+v (the keys must stay, the time be kept)", p)
	}
}
