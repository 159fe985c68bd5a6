package rendezvous

import (
	"context"
	"log/slog"
	"time"
)

const (
	// minRoundGap keeps Lookup calls in a loop from flooding the DHT.
	minRoundGap = time.Second
	// resolveTimeout bounds a retry of router resolution inside a round.
	resolveTimeout = 10 * time.Second
)

// rounds is the one goroutine that drives the library: it announces and
// looks up every Interval and when Lookup kicks, runs the watchdog, and
// saves the contacts.
func (r *Rendezvous) rounds() {
	defer r.roundsWG.Done()
	roundTick := time.NewTicker(r.s.Interval)
	defer roundTick.Stop()
	probeTick := time.NewTicker(min(r.s.Interval, maxProbeEvery))
	defer probeTick.Stop()
	gap := min(minRoundGap, r.s.Interval)
	w := watchdog{gap: min(r.s.Interval, maxProbeEvery)}
	r.round()
	lastRound, lastSave := time.Now(), time.Now()
	var delayed <-chan time.Time // a kicked round waiting out the gap
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-roundTick.C:
			r.round()
			lastRound = time.Now()
		case <-r.kick:
			if wait := gap - time.Since(lastRound); wait > 0 {
				if delayed == nil {
					delayed = time.After(wait)
				}
				continue
			}
			r.round()
			lastRound = time.Now()
		case <-delayed:
			delayed = nil
			r.round()
			lastRound = time.Now()
		case <-probeTick.C:
			r.watch(&w)
		}
		if time.Since(lastSave) >= r.s.Interval {
			if err := r.saveContacts(false); err != nil {
				r.log.Warn("saving mainline contacts", "err", err)
			}
			lastSave = time.Now()
		}
	}
}

// round asks the DHT for the network's peers; unless LookupOnly, the
// library announces our QUIC port (explicitly, not "implied port") to
// every node that answers with a token.
func (r *Rendezvous) round() {
	if r.cur == nil {
		return
	}
	r.mu.Lock()
	haveRouters := len(r.routers) > 0
	r.mu.Unlock()
	if !haveRouters {
		r.retryRouters()
	}
	r.cur.d.PeersRequestPort(string(r.s.infohash[:]), !r.s.LookupOnly, r.s.Port)
}

// retryRouters resolves the routers again (a node started offline) and
// hands those that resolve to the DHT.
func (r *Rendezvous) retryRouters() {
	ctx, cancel := context.WithTimeout(r.ctx, resolveTimeout)
	defer cancel()
	routers := resolveRouters(ctx, r.s.Routers, r.log, slog.LevelDebug)
	if len(routers) == 0 {
		return
	}
	r.mu.Lock()
	r.routers = routers
	r.mu.Unlock()
	for _, a := range routers {
		r.cur.d.AddNode(a)
	}
}
