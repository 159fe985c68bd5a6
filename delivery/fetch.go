package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/grant"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
)

// DefaultSinceMargin is how far before the last LIST a new LIST starts:
// room for clocks that differ between nodes and for blocks that reached a
// node late. The processed set makes the overlap cost nothing but bytes.
const DefaultSinceMargin = time.Hour

// A deferred mail is retried by every Fetch until it has failed
// giveUpAttempts times over at least giveUpAfter; it is then rejected, so
// a mail whose blocks are gone is not reported for the rest of the month.
const (
	giveUpAttempts = 10
	giveUpAfter    = 24 * time.Hour
)

// maxOpenPerFetch bounds the index blocks one Fetch gets and opens. A
// LIST can return tens of thousands of IDs, made up by a lying node at
// no cost; the rest wait for the next Fetch, whose LIST starts where
// this one did.
const maxOpenPerFetch = 1000

// FetchOptions tune Fetch.
type FetchOptions struct {
	// Maildir is where mail is delivered (new/ inside it). Required.
	Maildir string
	// Now is the current time. Required.
	Now time.Time
	// Keep leaves the blocks in the network after delivery instead of
	// deleting them.
	Keep bool
	// Workers bounds the shards fetched at once per mail; 0 means 8.
	Workers int
	// SinceMargin is subtracted from the last LIST time; 0 means
	// DefaultSinceMargin.
	SinceMargin time.Duration
	// Logger receives a line per mail; nil discards.
	Logger *slog.Logger
	// Progress, if set, follows the shards of each mail as they arrive,
	// so a big mail does not look like a hang. Calls come from one
	// goroutine.
	Progress func(FetchProgress)
	// ShardCache, if set, is a directory where the shards of big mails
	// are kept until the mail is delivered or given up (openOptions).
	ShardCache string
	// Grants, if set, is the table of grants me issued: mail without the
	// full work is delivered when it claims one of them (spec 17.4).
	// Without it, such mail is refused.
	Grants *grant.Table
	// MaxClaims bounds the grant claims opened per fetch; 0 means
	// MaxClaimsPerFetch, the spec's figure.
	MaxClaims int
	// KeyLogs, if set, resolves each sender's key log, and mail from a
	// sender that revoked its key, or whose key history forked, or
	// signed by a key it had retired when it signed, is rejected
	// (docs/PROTOCOL.md 15.5, checkSender). Without it, mail from a
	// sender that rotated (signed with a later generation's pubkey block)
	// is rejected with ErrSenderUnverified: only the key log binds that
	// block to the sender's address.
	KeyLogs KeyLogs
}

// FetchProgress is where a Fetch stands in one mail's download.
type FetchProgress struct {
	Mail, Mails int      // this mail's place (from 0) among those Fetch opens, and how many
	Index       block.ID // its index block
	ShardProgress
}

// Delivered describes one mail written into the Maildir.
type Delivered struct {
	Index      block.ID // its index block
	From       block.ID // the verified signer
	Recipients []block.ID
	Signed     time.Time
	MessageID  [16]byte // the envelope's
	Subject    string   // decoded, for display
	Path       string   // the file in the Maildir's new/
	Size       int64    // of the file in the Maildir
	// DeleteErr is set when deleting the mail's blocks from the network
	// failed; the mail is delivered all the same and the blocks expire.
	DeleteErr error
}

// FetchReport is the outcome of one Fetch.
type FetchReport struct {
	Listed    int          // index blocks the LIST returned
	Skipped   int          // already processed
	Delivered []Delivered  // in the order fetched
	Rejected  []*MailError // failed a check; remembered, never retried
	Deferred  []*MailError // failed for now; retried by the next Fetch
	Missing   int          // listed, but the index block could not be fetched
	Remaining int          // left for the next Fetch (over maxOpenPerFetch)
	ListErr   error        // the LIST reached only part of the nodes: the next Fetch lists again from the same time
	NotForMe  int          // sealed to someone else in the same prefix
	Granted   int          // of Delivered, those that came under a grant (spec 17)
	Work      FetchWork    // what the index blocks cost, counted (spec 17.5)
}

// Add adds o, the report of another Fetch of the same run (a delegated
// server's and the network's, spec 21.6), to r.
func (r *FetchReport) Add(o *FetchReport) {
	if o == nil {
		return
	}
	r.Listed += o.Listed
	r.Skipped += o.Skipped
	r.Delivered = append(r.Delivered, o.Delivered...)
	r.Rejected = append(r.Rejected, o.Rejected...)
	r.Deferred = append(r.Deferred, o.Deferred...)
	r.Missing += o.Missing
	r.Remaining += o.Remaining
	r.ListErr = errors.Join(r.ListErr, o.ListErr)
	r.NotForMe += o.NotForMe
	r.Granted += o.Granted
	r.Work.Fetched += o.Work.Fetched
	r.Work.Decapsulations += o.Work.Decapsulations
	r.Work.Claims += o.Work.Claims
	r.Work.ClaimOpens += o.Work.ClaimOpens
	r.Work.ClaimBytes += o.Work.ClaimBytes
}

// Fetch collects me's mail (spec 9.6): it LISTs the index blocks in me's
// routing prefix (spec 6) since the last LIST (less opt.SinceMargin), skips those in
// st, retries the deferred ones, opens and verifies each, delivers it into
// the Maildir, and then deletes its blocks unless opt.Keep. A mail that
// fails does not stop the others: it is reported and remembered in st.
// The returned error is for what stops the whole fetch (the LIST, the
// disk, the state file, ctx); the report then holds what was done.
func Fetch(ctx context.Context, net Network, c *mail.Codec, me *identity.Identity, st *mailbox.State, opt FetchOptions) (*FetchReport, error) {
	if opt.Maildir == "" {
		return nil, errors.New("delivery: fetch: no Maildir given")
	}
	if opt.Now.IsZero() {
		return nil, errors.New("delivery: fetch: no current time given")
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	margin := opt.SinceMargin
	if margin == 0 {
		margin = DefaultSinceMargin
	}
	var since time.Time
	if last := st.LastList(); !last.IsZero() {
		since = last.Add(-margin)
	}
	rep := &FetchReport{}
	ids, err := net.List(ctx, me.ID(), mail.RoutePrefix(me.Difficulty()), since)
	if err != nil && (len(ids) == 0 || ctx.Err() != nil) {
		return rep, fmt.Errorf("delivery: listing mail for %s: %w", me.Address(), err)
	}
	if err != nil {
		// Some of the listing: fetch what it found, and list from the
		// same time again next time.
		rep.ListErr = err
		log.Warn("listing was incomplete; fetching what it found", "err", err)
	}
	rep.Listed = len(ids)
	// Never seen first, then the retries: made-up IDs listed again and
	// again must not keep new mail waiting.
	var todo, again []block.ID
	listed := make(map[block.ID]bool, len(ids))
	for _, id := range ids {
		if listed[id] {
			continue
		}
		listed[id] = true
		if st.Settled(id) {
			rep.Skipped++
			continue
		}
		if _, seen := st.Lookup(id); seen {
			again = append(again, id)
		} else {
			todo = append(todo, id)
		}
	}
	todo = append(todo, again...)
	for _, id := range st.Deferred() {
		if !listed[id] {
			todo = append(todo, id)
		}
	}

	if len(todo) > maxOpenPerFetch {
		rep.Remaining = len(todo) - maxOpenPerFetch
		todo = todo[:maxOpenPerFetch]
	}
	// Index blocks without the full work are grant claims, opened after
	// every block with it (spec 17.5).
	cl := &claims{max: opt.MaxClaims}
	// A delivered mail's blocks are deleted while the next mail is
	// fetched, and the last mail's while the state is saved: Fetch waits
	// for them (and records their errors) before it returns.
	var (
		deletes  sync.WaitGroup
		inFlight = make(chan struct{}, maxDeletesInFlight)
		delMu    sync.Mutex
		delErrs  = make(map[int]error)
	)
	defer func() {
		deletes.Wait()
		for at, err := range delErrs {
			rep.Delivered[at].DeleteErr = err
		}
	}()
	n := len(todo)
	for i := 0; i < len(todo)+len(cl.take); i++ {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		var id block.ID
		var pending *mail.Index
		if i < len(todo) {
			id = todo[i]
		} else {
			if i == len(todo) {
				cl.closed = true
				n += len(cl.take)
			}
			pending = cl.take[i-len(todo)]
			id = pending.ID
		}
		d, outcome, err := fetchOne(ctx, net, c, me, st, id, opt, i, n, pending, cl, &rep.Work)
		if errors.Is(err, errClaimLater) {
			continue
		}
		if errors.Is(err, errClaimOverCap) {
			rep.Remaining++
			continue
		}
		if err != nil && ctx.Err() != nil {
			return rep, ctx.Err() // cancelled: not the mail's fault, try again next time
		}
		if outcome == 0 {
			return rep, err // the Maildir failed: nothing else will fare better
		}
		if e, ok := st.Lookup(id); ok && (outcome == mailbox.OutcomeDeferred && opt.Now.Sub(e.Seen) >= giveUpAfter || outcome == mailbox.OutcomeMissing) &&
			e.Attempts+1 >= giveUpAttempts {
			outcome = mailbox.OutcomeRejected
			err = fmt.Errorf("gave up after %d attempts since %s: %w", e.Attempts+1, e.Seen.UTC().Format(time.DateTime), err)
		}
		st.Record(id, opt.Now, outcome, err)
		if outcome != mailbox.OutcomeDeferred {
			if err := dropCache(opt.ShardCache, id); err != nil {
				log.Warn("removing cached shards", "index", id.Short(), "err", err)
			}
		}
		if outcome == mailbox.OutcomeDelivered {
			st.RecordDelivery(id, messageKey(d.From, d.MessageID))
		}
		switch outcome {
		case mailbox.OutcomeNotForMe:
			rep.NotForMe++
			log.Debug("index block sealed to someone else", "index", id.Short())
		case mailbox.OutcomeRejected:
			rep.Rejected = append(rep.Rejected, &MailError{Index: id, Err: err})
			log.Warn("mail rejected", "index", id.Short(), "err", err)
		case mailbox.OutcomeMissing:
			rep.Missing++
			log.Debug("index block listed but not found", "index", id.Short(), "err", err)
		case mailbox.OutcomeDeferred:
			rep.Deferred = append(rep.Deferred, &MailError{Index: id, Err: err})
			log.Info("mail deferred", "index", id.Short(), "err", err)
		case mailbox.OutcomeDelivered:
			if d.grant != nil {
				rep.Granted++
			}
			rep.Delivered = append(rep.Delivered, d.Delivered)
			log.Info("mail delivered", "index", id.Short(), "from", identity.FormatAddress(d.From), "path", d.Path)
		}
		if outcome != mailbox.OutcomeDelivered {
			if d != nil && d.manifest != nil && !opt.Keep {
				// A refused grant claim is deleted like a delivered mail
				// (spec 17.4): its sender learns nothing from deletion.
				if err := deleteMail(ctx, net, id, d.manifest); err != nil {
					log.Debug("deleting a refused claim", "index", id.Short(), "err", err)
				}
			}
			continue // saved at the end; a crash before then only repeats work
		}
		// Saved before the blocks are deleted: a crash between the two
		// leaves blocks to expire, never a second delivery.
		if err := st.Save(); err != nil {
			return rep, err
		}
		if !opt.Keep {
			at, man := len(rep.Delivered)-1, d.manifest
			select {
			case inFlight <- struct{}{}:
			case <-ctx.Done():
				// Cancelled: the blocks expire.
				return rep, ctx.Err()
			}
			deletes.Go(func() {
				defer func() { <-inFlight }()
				if err := deleteMail(ctx, net, id, man); err != nil {
					delMu.Lock()
					delErrs[at] = err
					delMu.Unlock()
				}
			})
		}
	}
	if rep.Remaining == 0 && rep.ListErr == nil {
		st.SetLastList(opt.Now) // else the next LIST starts where this one did
	}
	st.Prune(opt.Now)
	if err := pruneCache(opt.ShardCache, st); err != nil {
		log.Warn("removing cached shards", "err", err)
	}
	return rep, st.Save()
}

// maxDeletesInFlight bounds the mails whose blocks a Fetch deletes at
// once, beside the mail it fetches.
const maxDeletesInFlight = 4

// pruneCache removes the cached shards of every mail that is not waiting
// for a retry: delivered, given up, forgotten, or left by a fetch that
// stopped before it recorded the mail.
func pruneCache(root string, st *mailbox.State) error {
	if root == "" {
		return nil
	}
	entries, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		id, err := block.ParseHexID(e.Name())
		if err == nil {
			if x, ok := st.Lookup(id); ok && x.Outcome == mailbox.OutcomeDeferred {
				continue
			}
		}
		if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// delivered carries the manifest beside Delivered, for the deletion,
// and the grant the mail came under, if any. A refused grant claim
// comes back as a delivered with only the manifest set.
type delivered struct {
	Delivered
	manifest *mail.Manifest
	grant    *grant.Grant
}

// fetchOne gets, opens and delivers one index block, streaming the
// message into the Maildir. A zero outcome with an error means the
// Maildir failed. A block without the full work is handed to cl
// (errClaimLater) unless it is one cl handed back as pending.
func fetchOne(ctx context.Context, net Network, c *mail.Codec, me *identity.Identity, st *mailbox.State, id block.ID, opt FetchOptions, nth, of int, pending *mail.Index, cl *claims, work *FetchWork) (*delivered, mailbox.Outcome, error) {
	x := pending
	if x == nil {
		var outcome mailbox.Outcome
		var err error
		if x, outcome, err = getIndex(ctx, net, me, id, work); err != nil {
			return nil, outcome, err
		}
		if !x.FullWork {
			return nil, 0, cl.add(x)
		}
	}
	man, g, err := checkIndex(x, opt.Grants, work)
	switch {
	case errors.Is(err, identity.ErrNotForMe):
		return nil, mailbox.OutcomeNotForMe, nil
	case err != nil && man != nil:
		return &delivered{manifest: man}, mailbox.OutcomeRejected, err
	case err != nil:
		return nil, mailbox.OutcomeRejected, err
	}
	oo := openOptions{Workers: opt.Workers, Now: opt.Now, ShardCache: opt.ShardCache}
	if opt.Progress != nil {
		oo.Progress = func(p ShardProgress) {
			opt.Progress(FetchProgress{Mail: nth, Mails: of, Index: id, ShardProgress: p})
		}
	}
	d, err := mailbox.Maildir{Dir: opt.Maildir}.Create(opt.Now)
	if err != nil {
		return nil, 0, err
	}
	mw := &maildirWriter{d: d}
	o, man, err := openManifestTo(ctx, net, c, me, id, man, mw, oo)
	if err == nil && g != nil {
		if err = grant.CheckSender(g, o.Sender.Owner); err != nil {
			d.Abort()
			return &delivered{manifest: man}, mailbox.OutcomeRejected, err
		}
	}
	if err != nil {
		d.Abort()
	}
	switch {
	case mw.err != nil:
		return nil, 0, mw.err
	case errors.Is(err, identity.ErrNotForMe):
		return nil, mailbox.OutcomeNotForMe, nil
	case errors.Is(err, mail.ErrShardsMissing):
		return nil, mailbox.OutcomeDeferred, err // shards may come back
	case err != nil:
		return nil, mailbox.OutcomeRejected, err
	}
	// Another recipient of the same mail can store its envelope again
	// under a new index block: one signed mail is delivered once.
	key := messageKey(o.Sender.Owner, o.Envelope.MessageID)
	if first, ok := st.DeliveredAs(key); ok {
		d.Abort()
		return nil, mailbox.OutcomeRejected, fmt.Errorf("%w: message %x from %s came in index block %s", ErrDuplicate, o.Envelope.MessageID, o.Sender.Address(), first.Short())
	}
	if err := checkSender(ctx, opt.KeyLogs, o); err != nil {
		d.Abort()
		// A key log that could not be read now may be read later.
		if ctx.Err() != nil || errors.Is(err, errSenderLogUnread) {
			return nil, mailbox.OutcomeDeferred, err
		}
		return nil, mailbox.OutcomeRejected, err
	}
	size := d.Size()
	path, err := d.Commit()
	if err != nil {
		return nil, 0, err
	}
	return &delivered{
		Delivered: Delivered{
			Index: id, From: o.Sender.Owner, Recipients: o.Envelope.Recipients,
			Signed: o.Envelope.Time, MessageID: o.Envelope.MessageID,
			Subject: mail.Subject(o.Head), Path: path, Size: size,
		},
		manifest: man,
		grant:    g,
	}, mailbox.OutcomeDelivered, nil
}

// maildirWriter keeps the Maildir's write error apart from the mail's.
type maildirWriter struct {
	d   *mailbox.Delivery
	err error
}

func (w *maildirWriter) Write(p []byte) (int, error) {
	n, err := w.d.Write(p)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}

// deleteMail asks the network to drop the index block and, when the
// manifest holds their preimage, the data blocks.
func deleteMail(ctx context.Context, net Network, id block.ID, man *mail.Manifest) error {
	var ids []block.ID
	if man.HasDataDeletion {
		ids = man.ShardIDs
	}
	if md, ok := net.(MailDeleter); ok {
		if err := md.DeleteMail(ctx, id, man.IndexDeletion, ids, man.DataDeletion); err != nil {
			return fmt.Errorf("deleting mail %s: %w", id.Short(), err)
		}
		return nil
	}
	del := net.Delete
	if dd, ok := net.(DataDeleter); ok {
		del = dd.DeleteData
	}
	// The index block's delete (a wider lookup) runs beside the shards'.
	failed := make([]error, 1+len(ids))
	// The callbacks never fail, so forEach's error is ctx's: deletes it
	// never started.
	ferr := forEach(ctx, len(failed), 8, func(ctx context.Context, i int) error {
		if i == 0 {
			if err := net.Delete(ctx, id, man.IndexDeletion); err != nil {
				failed[0] = fmt.Errorf("deleting index block %s: %w", id.Short(), err)
			}
			return nil
		}
		if err := del(ctx, ids[i-1], man.DataDeletion); err != nil {
			failed[i] = fmt.Errorf("deleting data block %s: %w", ids[i-1].Short(), err)
		}
		return nil
	})
	return errors.Join(append(failed, ferr)...)
}
