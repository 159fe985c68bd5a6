package grant

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/atomicfile"
	"github.com/flowmail/flowmail/mail"
)

// Reasons a recipient refuses a mail without the full work (spec 17.4),
// each its own, so a refusal says what happened.
var (
	ErrNoWork       = errors.New("grant: neither the full work nor a grant claim")
	ErrUnknown      = errors.New("grant: unknown grant")
	ErrWithdrawn    = errors.New("grant: withdrawn grant")
	ErrForged       = errors.New("grant: forged claim")
	ErrTransplanted = errors.New("grant: transplanted grant")
)

// ErrFile reports a grants file that does not parse.
var ErrFile = errors.New("grant: damaged grants file")

// Table is one identity's grants: those it issued, by grant ID, with
// their withdrawal times, and those it holds from others, by granter.
// Its methods may be called from several goroutines.
type Table struct {
	mu     sync.Mutex
	issued map[[mail.GrantIDSize]byte]*Issued
	held   map[block.ID]*Grant
}

// Issued is a grant the table's owner gave, and when it was withdrawn
// (zero while it stands).
type Issued struct {
	Grant     *Grant
	Withdrawn time.Time
}

// NewTable returns an empty table.
func NewTable() *Table {
	return &Table{issued: map[[mail.GrantIDSize]byte]*Issued{}, held: map[block.ID]*Grant{}}
}

// Issue gives grantee a grant from granter, or returns the one that
// stands already: one grant per grantee, so that allowing twice does not
// leave two secrets to withdraw.
func (t *Table) Issue(granter, grantee block.ID, now time.Time, rnd io.Reader) (*Grant, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, x := range t.issued {
		if x.Grant.Grantee == grantee && x.Grant.Granter == granter && x.Withdrawn.IsZero() {
			return x.Grant, nil
		}
	}
	g, err := New(granter, grantee, now, rnd)
	if err != nil {
		return nil, err
	}
	t.issued[g.ID] = &Issued{Grant: g}
	return g, nil
}

// Withdraw withdraws every standing grant to grantee (spec 17.6) and
// says how many there were.
func (t *Table) Withdraw(grantee block.ID, now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, x := range t.issued {
		if x.Grant.Grantee == grantee && x.Withdrawn.IsZero() {
			x.Withdrawn = time.Unix(max(now.Unix(), 1), 0)
			n++
		}
	}
	return n
}

// List returns the issued grants, standing ones first, each group by
// issue time.
func (t *Table) List() []Issued {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Issued
	for _, x := range t.issued {
		out = append(out, *x)
	}
	slices.SortFunc(out, func(a, b Issued) int {
		if wa, wb := !a.Withdrawn.IsZero(), !b.Withdrawn.IsZero(); wa != wb {
			if wa {
				return 1
			}
			return -1
		}
		// The ID breaks ties, so Encode writes one table one way.
		return cmp.Or(a.Grant.Issued.Compare(b.Grant.Issued), bytes.Compare(a.Grant.ID[:], b.Grant.ID[:]))
	})
	return out
}

// Hold keeps a grant given to the table's owner, replacing an older one
// from the same granter.
func (t *Table) Hold(g *Grant) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.held[g.Granter]; !ok || !g.Issued.Before(old.Issued) {
		t.held[g.Granter] = g
	}
}

// Drop forgets the grant held from granter, and says whether there was one.
func (t *Table) Drop(granter block.ID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.held[granter]
	delete(t.held, granter)
	return ok
}

// HeldFrom returns the grant held from granter, or nil.
func (t *Table) HeldFrom(granter block.ID) *Grant {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.held[granter]
}

// Claims returns the grant claims for mail to recipients, in their
// order: nil where no grant is held. A sender passes them to
// mail.BuildInput.Grants.
func (t *Table) Claims(recipients []*identity.PublicKey) []*mail.GrantClaim {
	out := make([]*mail.GrantClaim, len(recipients))
	any := false
	for i, r := range recipients {
		if g := t.HeldFrom(r.ID); g != nil {
			out[i], any = g.Claim(), true
		}
	}
	if !any {
		return nil
	}
	return out
}

// Check is spec 17.4 steps 2 to 4 for an index block x that lacks the
// full work and whose manifest man opened: it returns the grant claimed,
// or why the claim is refused. Step 5 (CheckSender) follows once the
// body is open.
func (t *Table) Check(x *mail.Index, man *mail.Manifest) (*Grant, error) {
	if !man.HasClaim() {
		return nil, ErrNoWork
	}
	t.mu.Lock()
	e, ok := t.issued[man.GrantID]
	t.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %x", ErrUnknown, man.GrantID[:4])
	}
	if !e.Withdrawn.IsZero() {
		return nil, fmt.Errorf("%w: given to %s, withdrawn on %s", ErrWithdrawn, identity.FormatAddress(e.Grant.Grantee), e.Withdrawn.UTC().Format(time.DateOnly))
	}
	if !x.CheckClaim(man, &e.Grant.Key) {
		return nil, fmt.Errorf("%w: the MAC of grant %x does not verify", ErrForged, man.GrantID[:4])
	}
	return e.Grant, nil
}

// CheckSender is spec 17.4 step 5: the mail's verified signer is the
// grantee.
func CheckSender(g *Grant, signer block.ID) error {
	if g.Grantee != signer {
		return fmt.Errorf("%w: given to %s, used by %s", ErrTransplanted, identity.FormatAddress(g.Grantee), identity.FormatAddress(signer))
	}
	return nil
}

// Prune forgets withdrawn grants whose withdrawal is older than
// identity.GracePeriod (spec 17.6): claims under them are then unknown.
func (t *Table) Prune(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, x := range t.issued {
		if !x.Withdrawn.IsZero() && now.Sub(x.Withdrawn) > identity.GracePeriod {
			delete(t.issued, id)
		}
	}
}

// The grants file (spec 10.4) is a sequence of records of
// recordSize bytes: kind, the withdrawal time (Unix seconds, 0 while
// standing; always 0 for held grants), the grant.
const (
	recordIssued = 1
	recordHeld   = 2
	recordSize   = 1 + 8 + Size
	// maxRecords bounds the file: more grants than anyone gives.
	maxRecords = 1 << 16
)

// Encode returns the grants file's bytes, in a stable order.
func (t *Table) Encode() []byte {
	var b []byte
	for _, x := range t.List() {
		b = append(b, recordIssued)
		w := int64(0)
		if !x.Withdrawn.IsZero() {
			w = x.Withdrawn.Unix()
		}
		b = binary.BigEndian.AppendUint64(b, uint64(w))
		b = append(b, x.Grant.Encode()...)
	}
	for _, g := range t.Held() {
		b = append(b, recordHeld)
		b = binary.BigEndian.AppendUint64(b, 0)
		b = append(b, g.Encode()...)
	}
	return b
}

// ParseTable decodes a grants file.
func ParseTable(b []byte) (*Table, error) {
	if len(b)%recordSize != 0 {
		return nil, fmt.Errorf("%w: %d bytes, not a whole number of %d-byte records", ErrFile, len(b), recordSize)
	}
	if len(b)/recordSize > maxRecords {
		return nil, fmt.Errorf("%w: %d records, at most %d", ErrFile, len(b)/recordSize, maxRecords)
	}
	t := NewTable()
	for off := 0; off < len(b); off += recordSize {
		r := b[off : off+recordSize]
		w := binary.BigEndian.Uint64(r[1:])
		g, err := Parse(r[9:])
		if err != nil {
			return nil, fmt.Errorf("%w: record %d: %w", ErrFile, off/recordSize, err)
		}
		switch {
		case r[0] == recordIssued && w <= 1<<62:
			if _, dup := t.issued[g.ID]; dup {
				return nil, fmt.Errorf("%w: record %d repeats grant %x", ErrFile, off/recordSize, g.ID[:4])
			}
			x := &Issued{Grant: g}
			if w != 0 {
				x.Withdrawn = time.Unix(int64(w), 0)
			}
			t.issued[g.ID] = x
		case r[0] == recordHeld && w == 0:
			if _, dup := t.held[g.Granter]; dup {
				return nil, fmt.Errorf("%w: record %d repeats a grant from %s", ErrFile, off/recordSize, g.Granter.Short())
			}
			t.held[g.Granter] = g
		default:
			return nil, fmt.Errorf("%w: record %d of kind %d, withdrawn %d", ErrFile, off/recordSize, r[0], w)
		}
	}
	return t, nil
}

// Load reads the grants file at path; a missing file is an empty table.
func Load(path string) (*Table, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return NewTable(), nil
	}
	if err != nil {
		return nil, err
	}
	return ParseTable(b)
}

// Save writes the table to path atomically, readable by its owner only:
// grant keys are secrets.
func (t *Table) Save(path string) error { return atomicfile.Write(path, t.Encode(), 0o600) }

// Held returns the grants the table's owner holds, by granter.
func (t *Table) Held() []*Grant {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*Grant, 0, len(t.held))
	for _, g := range t.held {
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b *Grant) int { return bytes.Compare(a.Granter[:], b.Granter[:]) })
	return out
}
