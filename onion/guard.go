package onion

import (
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

// Guard rotation (section 14.8).
const (
	// GuardMinLifetime and GuardMaxLifetime bound how long a guard is
	// kept; each guard's lifetime is drawn uniformly between them, so
	// clients that chose together do not rotate together.
	GuardMinLifetime = 10 * 24 * time.Hour
	GuardMaxLifetime = 20 * 24 * time.Hour
	// GuardGrace is how long a guard may keep failing before it is
	// replaced. Meanwhile paths start at another relay, operation by
	// operation, so a relay that knocks the guard offline for an hour does
	// not become the new guard.
	GuardGrace = 24 * time.Hour
)

// Guard is the client's stable first hop (and last reply hop).
type Guard struct {
	Hop          Hop
	Chosen       time.Time
	Expires      time.Time
	FailingSince time.Time // zero while it answers
}

// ErrGuardFile: a guard file that does not parse.
var ErrGuardFile = errors.New("onion: malformed guard file")

// Usable reports whether g may start paths at now.
func (g *Guard) Usable(now time.Time) bool {
	return g != nil && now.Before(g.Expires) && g.FailingSince.IsZero()
}

// Current reports whether g is kept at now: not expired, not failing for
// longer than GuardGrace. A kept guard that is failing is not Usable.
func (g *Guard) Current(now time.Time) bool {
	return g != nil && now.Before(g.Expires) &&
		(g.FailingSince.IsZero() || now.Sub(g.FailingSince) < GuardGrace)
}

// Failed notes that the guard did not answer at now.
func (g *Guard) Failed(now time.Time) {
	if g.FailingSince.IsZero() {
		g.FailingSince = now
	}
}

// Answered notes that the guard answered.
func (g *Guard) Answered() { g.FailingSince = time.Time{} }

// KeepGuard returns g while it is Current, else a new guard drawn from
// contacts (any relay with a usable address, never the old one). The
// caller persists the result when it changed.
func KeepGuard(rnd *mrand.Rand, g *Guard, contacts []Hop, now time.Time) (kept *Guard, changed bool, err error) {
	if g.Current(now) {
		return g, false, nil
	}
	var old block.ID
	if g != nil {
		old = g.Hop.ID()
	}
	var cands []Hop
	for _, h := range contacts {
		if h.Pubkey != nil && h.Addr.IsValid() && h.Addr.Port() != 0 && h.ID() != old && PathGroup(h.Addr.Addr()).IsValid() {
			cands = append(cands, h)
		}
	}
	if len(cands) == 0 {
		return nil, false, fmt.Errorf("%w: no contact can be a guard", ErrNoPath)
	}
	life := GuardMinLifetime + time.Duration(rnd.Int64N(int64(GuardMaxLifetime-GuardMinLifetime)))
	now = time.Unix(now.Unix(), 0)
	return &Guard{Hop: cands[rnd.IntN(len(cands))], Chosen: now, Expires: now.Add(life).Truncate(time.Second)}, true, nil
}

// guardMagic starts a guard file.
const guardMagic = "flowmail-guard v1\n"

// GuardFileSize is the exact size of a guard file.
const GuardFileSize = len(guardMagic) + block.PubkeySize + addrSize + 3*8

// EncodeGuard returns the guard file:
// magic || pubkey [1330] || addr [19] || chosen u64 || expires u64 ||
// failing_since u64 (0 while it answers).
func EncodeGuard(g *Guard) ([]byte, error) {
	b := make([]byte, 0, GuardFileSize)
	b = append(b, guardMagic...)
	b = append(b, g.Hop.Pubkey.Block...)
	var a [addrSize]byte
	if err := putAddr(a[:], g.Hop.Addr); err != nil || !g.Hop.Addr.IsValid() {
		return nil, fmt.Errorf("%w: guard address %v", ErrGuardFile, g.Hop.Addr)
	}
	b = append(b, a[:]...)
	var failing uint64
	if !g.FailingSince.IsZero() {
		failing = uint64(g.FailingSince.Unix())
	}
	b = binary.BigEndian.AppendUint64(b, uint64(g.Chosen.Unix()))
	b = binary.BigEndian.AppendUint64(b, uint64(g.Expires.Unix()))
	b = binary.BigEndian.AppendUint64(b, failing)
	if len(b) != GuardFileSize {
		return nil, fmt.Errorf("%w: pubkey block of %d bytes", ErrGuardFile, len(g.Hop.Pubkey.Block))
	}
	return b, nil
}

// ParseGuard decodes a guard file; the pubkey block must verify.
func ParseGuard(b []byte) (*Guard, error) {
	if len(b) != GuardFileSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrGuardFile, len(b), GuardFileSize)
	}
	if string(b[:len(guardMagic)]) != guardMagic {
		return nil, fmt.Errorf("%w: magic", ErrGuardFile)
	}
	b = b[len(guardMagic):]
	pk, err := identity.ParsePubkey(b[:block.PubkeySize])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrGuardFile, err)
	}
	b = b[block.PubkeySize:]
	addr, err := parseAddr(b[:addrSize])
	if err != nil || !addr.IsValid() {
		return nil, fmt.Errorf("%w: address", ErrGuardFile)
	}
	b = b[addrSize:]
	chosen, expires, failing := binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:]), binary.BigEndian.Uint64(b[16:])
	const maxTime = 1 << 40 // seconds: year 36812, keeps time.Unix arithmetic exact
	if chosen >= expires || expires-chosen > uint64(GuardMaxLifetime/time.Second) || expires > maxTime || failing > maxTime {
		return nil, fmt.Errorf("%w: chosen %d, expires %d", ErrGuardFile, chosen, expires)
	}
	g := &Guard{
		Hop:     Hop{Pubkey: pk, Addr: addr},
		Chosen:  time.Unix(int64(chosen), 0),
		Expires: time.Unix(int64(expires), 0),
	}
	if failing != 0 {
		g.FailingSince = time.Unix(int64(failing), 0)
	}
	return g, nil
}
