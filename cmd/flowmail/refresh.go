package main

import (
	"context"
	"log/slog"
	"sort"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/record"
)

// A client re-stores its contacts' key logs (docs/PROTOCOL.md 15.4), so a
// log outlives its owner being offline. Each fetch re-stores a few, the
// least recently re-stored first, each at most once a day: the cost is
// bounded per fetch (a lookup and K stores each), and a book of n
// contacts is gone through every n/refreshPerFetch fetches, well within
// the month a log lives.
const (
	refreshPerFetch = 8
	refreshEvery    = 24 * time.Hour
)

// recordRefresher is the part of the DHT that re-stores a record
// (*kademlia.DHT.RefreshRecord).
type recordRefresher interface {
	RefreshRecord(ctx context.Context, slot block.ID, lifetime time.Duration) (*record.Record, int, error)
}

// dueForRefresh returns the pinned addresses whose key logs are due at
// now, least recently re-stored first (never before all), at most
// refreshPerFetch of them.
func dueForRefresh(book *contactBook, now time.Time) []string {
	type due struct {
		addr string
		at   time.Time // zero: never
	}
	var ds []due
	for addr, p := range book.Pins {
		var at time.Time
		if p.Refreshed != "" {
			t, err := time.Parse(time.RFC3339, p.Refreshed)
			if err == nil && now.Sub(t) < refreshEvery && !t.After(now) {
				continue
			}
			if err == nil && !t.After(now) {
				at = t
			}
		}
		ds = append(ds, due{addr, at})
	}
	sort.Slice(ds, func(i, j int) bool {
		if !ds[i].at.Equal(ds[j].at) {
			return ds[i].at.Before(ds[j].at)
		}
		return ds[i].addr < ds[j].addr
	})
	out := make([]string, 0, min(len(ds), refreshPerFetch))
	for _, d := range ds[:min(len(ds), refreshPerFetch)] {
		out = append(out, d.addr)
	}
	return out
}

// refreshContactLogs re-stores the key logs of the contacts due
// (dueForRefresh) with a fresh lifetime, and records when in the
// contacts file, whatever the outcome, so one contact whose log is gone
// does not hold back the others. It returns how many logs it re-stored.
// Failures are logged, never fatal: fetching is what the user asked for.
func refreshContactLogs(ctx context.Context, d recordRefresher, home string, now time.Time, log *slog.Logger) int {
	book, err := loadContacts(home)
	if err != nil {
		log.Debug("contacts: not re-storing key logs", "err", err)
		return 0
	}
	due := dueForRefresh(book, now)
	if len(due) == 0 {
		return 0
	}
	stored := 0
	for _, a := range due {
		if ctx.Err() != nil {
			break
		}
		addr, err := identity.ParseAddress(a)
		if err != nil {
			continue
		}
		_, n, err := d.RefreshRecord(ctx, record.KeyLogSlot(addr), block.MaxLifetime)
		if err != nil {
			log.Debug("contacts: re-storing a key log", "address", a, "err", err)
		} else if n > 0 {
			stored++
		}
		if ctx.Err() == nil {
			book.Pins[a].Refreshed = now.UTC().Format(time.RFC3339)
		}
	}
	// The book is read again just before writing, so pins a concurrent
	// send took are kept; only the times are merged in.
	fresh, err := loadContacts(home)
	if err != nil {
		return stored
	}
	for a, p := range book.Pins {
		if q := fresh.Pins[a]; q != nil && p.Refreshed != "" {
			q.Refreshed = p.Refreshed
		}
	}
	if err := fresh.save(home); err != nil {
		log.Debug("contacts: saving when key logs were re-stored", "err", err)
	}
	return stored
}
