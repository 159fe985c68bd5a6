package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/atomicfile"
	"github.com/flowmail/flowmail/internal/clock"
	"github.com/flowmail/flowmail/kademlia"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/record"
)

// Held-mail limits (docs/PROTOCOL.md 11 and 21).
const (
	// DefaultHeldQuota is the bytes a server holds per owner unless
	// configured otherwise.
	DefaultHeldQuota = 1 << 30
	// MaxHeldMails is the most mails held per owner, whatever their size.
	MaxHeldMails = 10000
	// MaxHeldOwners is the most owners one server collects for.
	MaxHeldOwners = 100000
	// MaxCollectPerRound bounds the index blocks taken per owner per
	// collection round; the rest wait for the next round.
	MaxCollectPerRound = 1000
	// DefaultCollectInterval is how often a server collects.
	DefaultCollectInterval = 10 * time.Minute
	// ConfirmSkew is how far HELD_CONFIRM's time may be from the
	// server's clock.
	ConfirmSkew = time.Hour
	// collectMargin is subtracted from the last LIST, as a recipient's
	// fetch does (delivery.DefaultSinceMargin).
	collectMargin = time.Hour
	// forgetAfter is how long a confirmed index ID is remembered, so a
	// copy still in the DHT is not collected again.
	forgetAfter = block.MaxLifetime + 2*24*time.Hour
)

// Error codes of held-mail answers (section 21.5).
const (
	// CodeNotHeld: the server holds nothing for that owner, or not that
	// block.
	CodeNotHeld kademlia.ErrorCode = 16
)

// Errors of the holder and its client.
var (
	ErrNotHeld  = errors.New("server: not held")
	ErrTooMany  = errors.New("server: too many owners")
	ErrBadProof = errors.New("server: confirmation refused")
)

// HeldDir is the directory under a server's data directory that holds
// the collected mail: one directory per owner (hex address), one per
// mail inside it (hex index ID), holding the index block, its locator and
// its shards as files named by their hex IDs.
const HeldDir = "held"

// confirmedFile, in an owner's directory, lists the index IDs the owner
// confirmed ("hex unix" lines), so copies still in the DHT are not
// collected again.
const confirmedFile = "confirmed"

// CollectNetwork is what the holder needs of the DHT (a *node.Node and its
// DHT give it).
type CollectNetwork interface {
	Get(ctx context.Context, id block.ID) ([]byte, error)
	List(ctx context.Context, target block.ID, bits int, since time.Time) ([]block.ID, error)
	Pubkey(ctx context.Context, addr block.ID) (*identity.PublicKey, error)
	KeyState(ctx context.Context, addr block.ID) (record.KeyState, error)
	GetRecord(ctx context.Context, slot block.ID) (*record.Record, time.Duration, error)
}

// HolderConfig configures a Holder.
type HolderConfig struct {
	Dir   string   // HeldDir under the data directory
	Self  block.ID // the server's node address, which delegations name
	Net   CollectNetwork
	Clock clock.Clock
	// Quota is the bytes held per owner; 0 means DefaultHeldQuota.
	Quota  int64
	Logger *slog.Logger
}

// Holder collects and holds the mail of owners who delegated to this
// server (section 21), and answers the held-mail messages. Collect does
// the work; Run calls it on a ticker.
type Holder struct {
	cfg HolderConfig

	collecting sync.Mutex // one round at a time

	mu     sync.Mutex // guards owners and their maps; never held across I/O
	owners map[block.ID]*owner
}

type owner struct {
	state     HoldState
	text      string
	notAfter  uint64
	lastList  time.Time
	mails     map[block.ID]*heldMail // by index ID
	blocks    map[block.ID]block.ID  // block ID -> index ID
	bytes     int64
	confirmed map[block.ID]time.Time
	failed    map[block.ID]int // index IDs that failed, with attempts
	full      bool             // a mail did not fit: collect nothing until a confirmation makes room
}

type heldMail struct {
	ids   []block.ID // index, locator, shards
	bytes int64
}

func newOwner() *owner {
	return &owner{state: HoldUnknown, mails: map[block.ID]*heldMail{}, blocks: map[block.ID]block.ID{}, confirmed: map[block.ID]time.Time{}, failed: map[block.ID]int{}}
}

// NewHolder loads what dir holds.
func NewHolder(cfg HolderConfig) (*Holder, error) {
	if cfg.Dir == "" || cfg.Net == nil {
		return nil, errors.New("server: a holder needs a directory and a network")
	}
	cfg.Clock = clock.Or(cfg.Clock)
	if cfg.Quota <= 0 {
		cfg.Quota = DefaultHeldQuota
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Holder{cfg: cfg, owners: map[block.ID]*owner{}}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	dirs, err := os.ReadDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	for _, d := range dirs {
		id, err := block.ParseHexID(d.Name())
		if err != nil || !d.IsDir() {
			continue
		}
		o, err := h.load(id)
		if err != nil {
			return nil, err
		}
		h.owners[id] = o
	}
	return h, nil
}

func (h *Holder) ownerDir(o block.ID) string { return filepath.Join(h.cfg.Dir, o.String()) }

// load reads an owner's directory: its mails and confirmations.
func (h *Holder) load(id block.ID) (*owner, error) {
	o := newOwner()
	dir := h.ownerDir(id)
	mails, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, m := range mails {
		idx, err := block.ParseHexID(m.Name())
		if err != nil || !m.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(dir, m.Name()))
		if err != nil {
			return nil, err
		}
		hm := &heldMail{}
		for _, f := range files {
			bid, err := block.ParseHexID(f.Name())
			if err != nil {
				continue // a temporary file of a write that did not finish
			}
			info, err := f.Info()
			if err != nil {
				return nil, err
			}
			hm.ids = append(hm.ids, bid)
			hm.bytes += info.Size()
			o.blocks[bid] = idx
		}
		o.mails[idx] = hm
		o.bytes += hm.bytes
	}
	if b, err := os.ReadFile(filepath.Join(dir, confirmedFile)); err == nil {
		for _, line := range bytes.Split(b, []byte("\n")) {
			var hexID string
			var unix int64
			if _, err := fmt.Sscanf(string(line), "%s %d", &hexID, &unix); err != nil {
				continue
			}
			if cid, err := block.ParseHexID(hexID); err == nil {
				o.confirmed[cid] = time.Unix(unix, 0)
			}
		}
	}
	return o, nil
}

// Hold registers owner (HOLD): the server checks its delegation at once
// and collects for it from then on while the delegation holds. It
// returns the owner's status.
func (h *Holder) Hold(ctx context.Context, o block.ID) (HoldStatus, error) {
	h.mu.Lock()
	if _, ok := h.owners[o]; !ok {
		if len(h.owners) >= MaxHeldOwners {
			h.mu.Unlock()
			return HoldStatus{}, fmt.Errorf("%w: %d owners", ErrTooMany, MaxHeldOwners)
		}
		h.owners[o] = newOwner()
	}
	h.mu.Unlock()
	state, text, notAfter := h.check(ctx, o)
	h.setState(o, state, text, notAfter)
	if state == HoldCollecting || state == HoldQuotaFull {
		if err := os.MkdirAll(h.ownerDir(o), 0o700); err != nil {
			return HoldStatus{}, err
		}
	} else if !h.holdsAny(o) {
		h.mu.Lock()
		delete(h.owners, o) // nothing to keep for an owner that did not delegate
		h.mu.Unlock()
	}
	return h.Status(o), nil
}

func (h *Holder) holdsAny(o block.ID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	ow := h.owners[o]
	return ow != nil && len(ow.mails) > 0
}

func (h *Holder) setState(o block.ID, s HoldState, text string, notAfter uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ow := h.owners[o]; ow != nil {
		if s == HoldCollecting && (ow.full || ow.bytes >= h.cfg.Quota || len(ow.mails) >= MaxHeldMails) {
			s, text = HoldQuotaFull, fmt.Sprintf("holding %d bytes in %d mails, quota %d bytes: new mail stays in the network until it expires", ow.bytes, len(ow.mails), h.cfg.Quota)
		}
		ow.state, ow.text, ow.notAfter = s, text, notAfter
	}
}

// Status is what HOLD_STATUS says of o now.
func (h *Holder) Status(o block.ID) HoldStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := HoldStatus{State: HoldNoDelegation, QuotaBytes: uint64(h.cfg.Quota), Text: "no delegation names this server"}
	if ow := h.owners[o]; ow != nil {
		st.State, st.NotAfter, st.Mails, st.Bytes, st.Text = ow.state, ow.notAfter, uint32(len(ow.mails)), uint64(ow.bytes), ow.text
	}
	if len(st.Text) > MaxStatusText {
		st.Text = st.Text[:MaxStatusText]
	}
	return st
}

// check reads o's key log and its delegation signed by the current key,
// and says whether it lets this server collect now.
func (h *Holder) check(ctx context.Context, o block.ID) (HoldState, string, uint64) {
	ks, err := h.cfg.Net.KeyState(ctx, o)
	switch {
	case errors.Is(err, record.ErrRevoked), errors.Is(err, record.ErrMoved):
		return HoldRevoked, "the identity ended: " + err.Error(), 0
	case err != nil:
		return HoldUnknown, "reading the key log: " + err.Error(), 0
	}
	if ks.Terminal() {
		return HoldRevoked, "the identity was revoked or moved", 0
	}
	rec, _, err := h.cfg.Net.GetRecord(ctx, record.DelegationSlot(o, ks.SignKey))
	switch {
	case errors.Is(err, record.ErrNotFound), errors.Is(err, kademlia.ErrNotFound):
		return HoldNoDelegation, fmt.Sprintf("no delegation signed by the current key (generation %d)", ks.Generation), 0
	case errors.Is(err, record.ErrRevoked):
		return HoldRevoked, "the delegation was revoked", 0
	case err != nil:
		return HoldUnknown, "reading the delegation: " + err.Error(), 0
	case rec.Delegation == nil:
		return HoldNoDelegation, "the slot holds no delegation", 0
	}
	d := rec.Delegation
	err = d.Check(ks, h.cfg.Clock.Now())
	switch {
	case errors.Is(err, record.ErrRevoked), errors.Is(err, record.ErrMoved):
		return HoldRevoked, err.Error(), d.Version.NotAfter
	case errors.Is(err, record.ErrExpired), errors.Is(err, record.ErrNotYetValid):
		return HoldExpired, err.Error(), d.Version.NotAfter
	case errors.Is(err, record.ErrWrongKey):
		return HoldWrongKey, err.Error(), d.Version.NotAfter
	case err != nil:
		return HoldUnknown, err.Error(), d.Version.NotAfter
	case !d.Includes(h.cfg.Self):
		return HoldNotNamed, "the delegation does not name this server", d.Version.NotAfter
	}
	until := time.Unix(int64(d.Version.NotAfter), 0).UTC().Format(time.RFC3339)
	return HoldCollecting, "collecting until " + until, d.Version.NotAfter
}

// Run collects every interval (DefaultCollectInterval when 0) until ctx
// ends.
func (h *Holder) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultCollectInterval
	}
	t := h.cfg.Clock.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.Collect(ctx)
		}
	}
}

// Collect runs one round for every owner: it checks each delegation
// again, and for those that hold, lists the owner's neighbourhood and
// takes the mail it does not hold yet.
func (h *Holder) Collect(ctx context.Context) {
	h.collecting.Lock()
	defer h.collecting.Unlock()
	h.mu.Lock()
	owners := make([]block.ID, 0, len(h.owners))
	for o := range h.owners {
		owners = append(owners, o)
	}
	h.mu.Unlock()
	slices.SortFunc(owners, func(a, b block.ID) int { return bytes.Compare(a[:], b[:]) })
	for _, o := range owners {
		if ctx.Err() != nil {
			return
		}
		state, text, notAfter := h.check(ctx, o)
		h.setState(o, state, text, notAfter)
		if h.Status(o).State != HoldCollecting {
			h.cfg.Logger.Info("not collecting", "owner", identity.FormatAddress(o), "why", h.Status(o).Text)
			continue
		}
		if err := h.collectOwner(ctx, o); err != nil {
			h.cfg.Logger.Warn("collecting", "owner", identity.FormatAddress(o), "err", err)
		}
	}
}

func (h *Holder) collectOwner(ctx context.Context, o block.ID) error {
	ks, err := h.cfg.Net.KeyState(ctx, o)
	if err != nil {
		return err
	}
	pub, err := h.cfg.Net.Pubkey(ctx, ks.Pubkey)
	if err != nil {
		return err
	}
	bits := mail.RoutePrefix(int(pub.Difficulty))
	now := h.cfg.Clock.Now()
	h.mu.Lock()
	ow := h.owners[o]
	var since time.Time
	if ow != nil && !ow.lastList.IsZero() {
		since = ow.lastList.Add(-collectMargin)
	}
	h.mu.Unlock()
	if ow == nil {
		return nil
	}
	ids, err := h.cfg.Net.List(ctx, o, bits, since)
	complete := err == nil
	if err != nil && len(ids) == 0 {
		return err
	}
	slices.SortFunc(ids, func(a, b block.ID) int { return bytes.Compare(a[:], b[:]) })
	ids = slices.Compact(ids)
	taken := 0
	for _, id := range ids {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		h.mu.Lock()
		_, held := ow.mails[id]
		_, done := ow.confirmed[id]
		tries := ow.failed[id]
		h.mu.Unlock()
		if held || done || tries >= 10 {
			continue
		}
		if taken >= MaxCollectPerRound {
			complete = false
			break
		}
		taken++
		switch err := h.take(ctx, o, ow, id, bits); {
		case errors.Is(err, errQuota):
			h.mu.Lock()
			ow.full = true
			h.mu.Unlock()
			h.setState(o, HoldCollecting, "", h.Status(o).NotAfter) // turns into quota full
			h.cfg.Logger.Info("quota reached", "owner", identity.FormatAddress(o), "index", id.Short())
			return nil
		case err != nil:
			h.mu.Lock()
			ow.failed[id]++
			h.mu.Unlock()
			h.cfg.Logger.Debug("not taken", "owner", identity.FormatAddress(o), "index", id.Short(), "err", err)
		}
	}
	h.mu.Lock()
	if complete {
		ow.lastList = now
	}
	h.mu.Unlock()
	return nil
}

var errQuota = errors.New("server: quota reached")

// take fetches index block id, checks what a recipient checks without a
// key (its hash, its route prefix, its layout), fetches its locator and
// every shard the locator lists, and keeps them all, or none when the
// quota would be passed.
func (h *Holder) take(ctx context.Context, o block.ID, ow *owner, id block.ID, bits int) error {
	blk, err := h.getVerified(ctx, id)
	if err != nil {
		return err
	}
	if cpl := block.CommonPrefixLen(id, o); cpl < bits {
		return fmt.Errorf("%w: shares %d bits with the owner, %d needed", mail.ErrNotRoutable, cpl, bits)
	}
	x, err := block.ParseIndex(blk)
	if err != nil {
		return err
	}
	blocks := [][]byte{blk}
	size := int64(len(blk))
	if x.Header.HasLocator {
		lb, err := h.getVerified(ctx, x.Locator)
		if err != nil {
			return fmt.Errorf("locator: %w", err)
		}
		shards, err := mail.ParseLocator(lb)
		if err != nil {
			return err
		}
		blocks = append(blocks, lb)
		size += int64(len(lb))
		for _, sid := range shards {
			if h.over(ow, size) {
				return errQuota
			}
			sb, err := h.getVerified(ctx, sid)
			if err != nil {
				continue // lost or not there: a recipient needs only k of a group
			}
			if _, err := block.ParseData(sb); err != nil {
				continue
			}
			blocks = append(blocks, sb)
			size += int64(len(sb))
		}
	}
	if h.over(ow, size) {
		return errQuota
	}
	dir := filepath.Join(h.ownerDir(o), id.String())
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	hm := &heldMail{bytes: size}
	for _, b := range blocks {
		bid := block.Sum(b)
		if err := atomicfile.Write(filepath.Join(dir, bid.String()), b, 0o600); err != nil {
			os.RemoveAll(dir)
			return err
		}
		hm.ids = append(hm.ids, bid)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	ow.mails[id] = hm
	ow.bytes += size
	for _, bid := range hm.ids {
		ow.blocks[bid] = id
	}
	delete(ow.failed, id)
	h.cfg.Logger.Info("holding mail", "owner", identity.FormatAddress(o), "index", id.Short(), "blocks", len(hm.ids), "bytes", size)
	return nil
}

// over reports whether adding n bytes (one more mail) passes o's quota.
func (h *Holder) over(ow *owner, n int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return ow.bytes+n > h.cfg.Quota || len(ow.mails)+1 > MaxHeldMails
}

func (h *Holder) getVerified(ctx context.Context, id block.ID) ([]byte, error) {
	b, err := h.cfg.Net.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if block.Sum(b) != id {
		return nil, fmt.Errorf("block %s: the network returned other bytes", id.Short())
	}
	return b, nil
}

// List returns up to MaxHeldIDs index IDs held for o after after, and
// whether more follow.
func (h *Holder) List(o, after block.ID) ([]block.ID, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ow := h.owners[o]
	if ow == nil {
		return nil, false, fmt.Errorf("%w: nothing is held for %s", ErrNotHeld, identity.FormatAddress(o))
	}
	var ids []block.ID
	for id := range ow.mails {
		if after.IsZero() || block.Less(after, id) {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b block.ID) int { return bytes.Compare(a[:], b[:]) })
	if len(ids) > MaxHeldIDs {
		return ids[:MaxHeldIDs], true, nil
	}
	return ids, false, nil
}

// Get returns a block held for o.
func (h *Holder) Get(o, id block.ID) ([]byte, error) {
	h.mu.Lock()
	ow := h.owners[o]
	var idx block.ID
	ok := false
	if ow != nil {
		idx, ok = ow.blocks[id]
	}
	h.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: block %s", ErrNotHeld, id.Short())
	}
	b, err := os.ReadFile(filepath.Join(h.ownerDir(o), idx.String(), id.String()))
	if err != nil {
		return nil, err
	}
	if block.Sum(b) != id { // the disk changed under us: serve nothing wrong
		return nil, fmt.Errorf("%w: block %s on disk does not hash to its name", ErrNotHeld, id.Short())
	}
	return b, nil
}

// Confirm drops the mails of m.IDs once m's signature verifies with the
// owner's current key and its time is within ConfirmSkew.
func (h *Holder) Confirm(ctx context.Context, m HeldConfirm) error {
	now := h.cfg.Clock.Now()
	t := time.Unix(int64(min(m.Time, 1<<62)), 0)
	if t.Before(now.Add(-ConfirmSkew)) || t.After(now.Add(ConfirmSkew)) {
		return fmt.Errorf("%w: signed at %s, more than %v from the server's clock", ErrBadProof, t.UTC().Format(time.RFC3339), ConfirmSkew)
	}
	ks, err := h.cfg.Net.KeyState(ctx, m.Owner)
	if err != nil {
		return fmt.Errorf("%w: reading the key log: %w", ErrBadProof, err)
	}
	if identity.SmallOrder(ks.SignKey[:]) || !ed25519.Verify(ks.SignKey[:], block.SignedMessage(LabelConfirm, ConfirmSigned(h.cfg.Self, m)), m.Signature[:]) {
		return fmt.Errorf("%w: the signature does not verify with the owner's current key", ErrBadProof)
	}
	h.mu.Lock()
	ow := h.owners[m.Owner]
	if ow == nil {
		h.mu.Unlock()
		return fmt.Errorf("%w: nothing is held for %s", ErrNotHeld, identity.FormatAddress(m.Owner))
	}
	var drop []block.ID
	for _, id := range m.IDs {
		ow.confirmed[id] = now
		if hm, ok := ow.mails[id]; ok {
			delete(ow.mails, id)
			ow.bytes -= hm.bytes
			for _, bid := range hm.ids {
				delete(ow.blocks, bid)
			}
			drop = append(drop, id)
		}
	}
	for id, at := range ow.confirmed {
		if now.Sub(at) > forgetAfter {
			delete(ow.confirmed, id)
		}
	}
	var lines bytes.Buffer
	for id, at := range ow.confirmed {
		fmt.Fprintf(&lines, "%s %d\n", id, at.Unix())
	}
	if len(drop) > 0 {
		ow.full = false
		if ow.state == HoldQuotaFull {
			ow.state, ow.text = HoldCollecting, "collecting again: room was made"
		}
	}
	h.mu.Unlock()
	var errs []error
	if err := os.MkdirAll(h.ownerDir(m.Owner), 0o700); err != nil {
		return err
	}
	errs = append(errs, atomicfile.Write(filepath.Join(h.ownerDir(m.Owner), confirmedFile), lines.Bytes(), 0o600))
	for _, id := range drop {
		errs = append(errs, os.RemoveAll(filepath.Join(h.ownerDir(m.Owner), id.String())))
	}
	return errors.Join(errs...)
}

// LabelConfirm is the signature label of HELD_CONFIRM.
const LabelConfirm = "flowmail/v1 held confirm"
