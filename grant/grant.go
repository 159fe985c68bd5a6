package grant

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/mail"
)

// Size is GrantSize of the spec's limits table: the bytes of one grant.
const Size = 1 + block.IDSize + block.IDSize + mail.GrantIDSize + 32 + 8

// version is the only grant version this code speaks.
const version = 1

// Errors of Parse (spec 17.1). Test vectors name them by the text after
// "grant: ".
var (
	ErrSize     = errors.New("grant: wrong size")
	ErrVersion  = errors.New("grant: unsupported version")
	ErrZeroID   = errors.New("grant: zero grant_id")
	ErrIssued   = errors.New("grant: zero issued time")
	ErrSelf     = errors.New("grant: granter and grantee are the same")
	ErrNotOurs  = errors.New("grant: not between the signer and this address")
	ErrNoGrants = errors.New("grant: no grant in the message")
)

// Grant is the secret a granter shares with a grantee (spec 17.1).
type Grant struct {
	Granter block.ID // the recipient that accepts mail under it
	Grantee block.ID // the sender (or list) allowed to use it
	ID      [mail.GrantIDSize]byte
	Key     [32]byte
	Issued  time.Time // whole seconds
}

// New issues a grant from granter to grantee, with its ID and key read
// from rnd (nil means crypto/rand).
func New(granter, grantee block.ID, now time.Time, rnd io.Reader) (*Grant, error) {
	if granter == grantee {
		return nil, fmt.Errorf("%w: %s", ErrSelf, granter.Short())
	}
	if now.Unix() <= 0 {
		return nil, fmt.Errorf("%w: issued at %v", ErrIssued, now)
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	g := &Grant{Granter: granter, Grantee: grantee, Issued: time.Unix(now.Unix(), 0)}
	for g.ID == [mail.GrantIDSize]byte{} {
		if _, err := io.ReadFull(rnd, g.ID[:]); err != nil {
			return nil, fmt.Errorf("grant: reading randomness: %w", err)
		}
	}
	if _, err := io.ReadFull(rnd, g.Key[:]); err != nil {
		return nil, fmt.Errorf("grant: reading randomness: %w", err)
	}
	return g, nil
}

// Encode returns the grant's Size bytes.
func (g *Grant) Encode() []byte {
	b := make([]byte, 0, Size)
	b = append(b, version)
	b = append(b, g.Granter[:]...)
	b = append(b, g.Grantee[:]...)
	b = append(b, g.ID[:]...)
	b = append(b, g.Key[:]...)
	return binary.BigEndian.AppendUint64(b, uint64(g.Issued.Unix()))
}

// Parse decodes and checks a grant (spec 17.1).
func Parse(b []byte) (*Grant, error) {
	if len(b) != Size {
		return nil, fmt.Errorf("%w: %d bytes, a grant has %d", ErrSize, len(b), Size)
	}
	if b[0] != version {
		return nil, fmt.Errorf("%w: version %d, this code speaks %d", ErrVersion, b[0], version)
	}
	g := &Grant{}
	off := 1
	off += copy(g.Granter[:], b[off:])
	off += copy(g.Grantee[:], b[off:])
	off += copy(g.ID[:], b[off:])
	off += copy(g.Key[:], b[off:])
	issued := binary.BigEndian.Uint64(b[off:])
	switch {
	case g.ID == [mail.GrantIDSize]byte{}:
		return nil, ErrZeroID
	case issued == 0 || issued > math.MaxInt64:
		return nil, fmt.Errorf("%w: %d", ErrIssued, issued)
	case g.Granter == g.Grantee:
		return nil, fmt.Errorf("%w: %s", ErrSelf, g.Granter.Short())
	}
	g.Issued = time.Unix(int64(issued), 0)
	return g, nil
}

// Claim is what the grantee's sender puts in the index block (spec 17.3).
func (g *Grant) Claim() *mail.GrantClaim { return &mail.GrantClaim{ID: g.ID, Key: g.Key} }
