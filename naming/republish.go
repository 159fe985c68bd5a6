package naming

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/internal/clock"
	"github.com/flowmail/flowmail/record"
)

// A domain keeps its certificates alive in the DHT (docs/PROTOCOL.md
// 19.6): holders republish a record only with the lifetime left, so
// without a fresh STORE a certificate that outlives MaxLifetime would
// vanish from the network while still valid.
const (
	// CertRepublishEvery is how often a certificate is stored again with a
	// fresh lifetime: four times within a block's lifetime, so a few
	// missed rounds (the node down for days) lose nothing.
	CertRepublishEvery = block.MaxLifetime / 4
	// CertRepublishInterval is how often a Republisher looks for
	// certificates due.
	CertRepublishInterval = time.Hour
	// CertRepublishPerRound bounds the certificates stored per round, so a
	// restart (every certificate due at once) is spread over rounds.
	CertRepublishPerRound = 64
	// CertRenewalNotice is how long before its not_after a certificate is
	// reported as ending: a renewal needs the user's signature (a new
	// request), which only a person can get.
	CertRenewalNotice = 30 * 24 * time.Hour
)

// Publisher stores a record at its slot for lifetime and says at how many
// nodes (*kademlia.DHT.PutRecord).
type Publisher interface {
	PutRecord(ctx context.Context, b []byte, lifetime time.Duration) (int, error)
}

// Republisher stores a domain owner's certificates again before the
// network forgets them. Run it in a goroutine its owner joins; it stops
// when its context ends.
type Republisher struct {
	// Certs lists the certificates to keep alive: the newest version the
	// owner issued of each name (a revoked one too, so the revocation
	// outlives every version it ends).
	Certs func() ([]*record.Record, error)
	DHT   Publisher
	Clock clock.Clock  // nil: real time
	Log   *slog.Logger // nil: discarded

	// stored is when each certificate (by block ID: a new version is a
	// new ID, due at once) was last stored.
	stored map[block.ID]time.Time
}

// Round is what one pass did.
type Round struct {
	Stored  []string // names stored again
	Failed  []string // names whose STORE failed (tried again next round)
	Ended   int      // certificates past their not_after, left alone
	Ending  []string // names whose certificates end within CertRenewalNotice
	Waiting int      // due but over CertRepublishPerRound: next round
}

// RepublishLifetime is the lifetime a certificate is stored with at now:
// the time left to its not_after, at most a block's lifetime, in whole
// seconds; zero when it has ended.
func RepublishLifetime(cert *record.NameCert, now time.Time) time.Duration {
	left := time.Unix(int64(cert.Version.NotAfter), 0).Sub(now).Truncate(time.Second)
	if left < time.Second {
		return 0
	}
	return min(block.MaxLifetime, left)
}

// Due returns, of certs, those to store again at now given when each was
// last stored: never stored first, then the longest ago, at most
// CertRepublishPerRound; and how many more are due.
func (r *Republisher) due(certs []*record.Record, now time.Time) (due []*record.Record, more int) {
	for _, c := range certs {
		at, ok := r.stored[block.Sum(c.Bytes())]
		if !ok || now.Sub(at) >= CertRepublishEvery {
			due = append(due, c)
		}
	}
	sort.SliceStable(due, func(i, j int) bool {
		a, b := r.stored[block.Sum(due[i].Bytes())], r.stored[block.Sum(due[j].Bytes())]
		if !a.Equal(b) {
			return a.Before(b)
		}
		return due[i].Name.Name < due[j].Name.Name
	})
	if len(due) > CertRepublishPerRound {
		return due[:CertRepublishPerRound], len(due) - CertRepublishPerRound
	}
	return due, 0
}

// RunRound makes one pass: it stores again every certificate due, for
// RepublishLifetime, and reports certificates ending soon.
func (r *Republisher) RunRound(ctx context.Context) (Round, error) {
	if r.stored == nil {
		r.stored = map[block.ID]time.Time{}
	}
	log := cmp.Or(r.Log, slog.New(slog.DiscardHandler))
	now := clock.Or(r.Clock).Now()
	certs, err := r.Certs()
	if err != nil {
		return Round{}, fmt.Errorf("naming: listing the certificates to republish: %w", err)
	}
	var rd Round
	live := certs[:0:0]
	for _, c := range certs {
		if c == nil || c.Kind != record.KindName {
			continue
		}
		if RepublishLifetime(c.Name, now) == 0 {
			rd.Ended++
			continue
		}
		if !c.Name.Version.Revoked && time.Unix(int64(c.Name.Version.NotAfter), 0).Sub(now) < CertRenewalNotice {
			rd.Ending = append(rd.Ending, c.Name.Name)
		}
		live = append(live, c)
	}
	due, more := r.due(live, now)
	rd.Waiting = more
	for _, c := range due {
		if err := ctx.Err(); err != nil {
			return rd, err
		}
		n, err := r.DHT.PutRecord(ctx, c.Bytes(), RepublishLifetime(c.Name, now))
		if err == nil && n == 0 {
			err = errors.New("no node stored it")
		}
		if err != nil {
			rd.Failed = append(rd.Failed, c.Name.Name)
			log.Warn("naming: republishing a certificate", "name", c.Name.Name, "seq", c.Name.Version.Seq, "err", err)
			continue
		}
		r.stored[block.Sum(c.Bytes())] = now
		rd.Stored = append(rd.Stored, c.Name.Name)
	}
	for _, name := range rd.Ending {
		log.Warn("naming: a certificate ends soon: renew it with a new request from its user (flowmail domain request --after)", "name", name)
	}
	// Forget what is no longer listed, so the map stays the size of the
	// list.
	keep := make(map[block.ID]bool, len(live))
	for _, c := range live {
		keep[block.Sum(c.Bytes())] = true
	}
	for id := range r.stored {
		if !keep[id] {
			delete(r.stored, id)
		}
	}
	return rd, nil
}

// Run makes a round at once and then every CertRepublishInterval until ctx
// ends; each round's outcome goes to done when it is set (tests wait on
// it). Errors of a round are logged; the next round tries again.
func (r *Republisher) Run(ctx context.Context, done func(Round, error)) {
	log := cmp.Or(r.Log, slog.New(slog.DiscardHandler))
	t := clock.Or(r.Clock).NewTicker(CertRepublishInterval)
	defer t.Stop()
	for {
		rd, err := r.RunRound(ctx)
		if err != nil && ctx.Err() == nil {
			log.Warn("naming: republishing certificates", "err", err)
		}
		if done != nil {
			done(rd, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
