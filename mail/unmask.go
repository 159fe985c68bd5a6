package mail

import (
	"crypto/hmac"
	"crypto/hpke"
	"fmt"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

// Index is an index block its recipient has unmasked (spec 6): the HPKE
// contexts are set up, the work mask is known, and FullWork says whether
// the block carries the recipient's whole difficulty. One without it is
// worth opening only as a grant claim (spec 17.4).
type Index struct {
	ID       block.ID
	FullWork bool

	recipient block.ID
	enc, ct   []byte
	ctxs      []*hpke.Recipient // one per key, those that gave the full work first
	full      []bool            // whether ctxs[i]'s mask gave the full work
	decaps    int               // HPKE decapsulations UnmaskIndex made
}

// Decapsulations is how many HPKE decapsulations (each with one export)
// unmasking took: one per decryption key tried (spec 17.5).
func (x *Index) Decapsulations() int { return x.decaps }

// Keys is how many AEAD opens Open may make: one per context kept.
func (x *Index) Keys() int { return len(x.ctxs) }

// UnmaskIndex makes the checks of spec 6 on the index block blk, listed
// under id, for me: it hashes to id, it is routable to me, it parses;
// then, for each of me's decryption keys, one HPKE decapsulation and one
// export give the work mask, and one comparison the full work. It does
// not open the manifest (Index.Open does), so its cost per block is
// bounded whatever the block claims (spec 17.5).
func UnmaskIndex(me *identity.Identity, id block.ID, blk []byte) (*Index, error) {
	if got := block.Sum(blk); got != id {
		return nil, fmt.Errorf("%w: listed as %s, its bytes hash to %s", ErrIndexBlock, id.Short(), got.Short())
	}
	if err := CheckRoute(me, id); err != nil {
		return nil, err
	}
	x, err := block.ParseIndex(blk)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIndexBlock, err)
	}
	if len(x.Sealed) < encSize {
		return nil, fmt.Errorf("%w: sealed part of %d bytes, shorter than the %d-byte encapsulation", ErrIndexBlock, len(x.Sealed), encSize)
	}
	ix := &Index{ID: id, recipient: me.ID(), enc: x.Sealed[:encSize], ct: x.Sealed[encSize:]}
	d := me.Difficulty()
	for _, k := range me.DecryptionKeys() {
		ix.decaps++
		ctx, err := hpke.NewRecipient(ix.enc, k, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), []byte(block.LabelIndex))
		if err != nil {
			continue // an encapsulation this key rejects: not sealed to it
		}
		t, err := workTarget(me.ID(), d, ctx.Export)
		if err != nil {
			return nil, err
		}
		// Every key is kept: a context from a key the block was not
		// sealed to exports a mask too, and its hidden bits match by
		// chance (always when D <= RouteBits: nothing is hidden), so
		// only the AEAD open in Open says which key it was.
		full := block.CommonPrefixLen(id, t) >= d
		if full {
			ix.FullWork = true
			ix.ctxs = append([]*hpke.Recipient{ctx}, ix.ctxs...)
			ix.full = append([]bool{true}, ix.full...)
		} else {
			ix.ctxs = append(ix.ctxs, ctx)
			ix.full = append(ix.full, false)
		}
	}
	return ix, nil
}

// Open opens and decodes the manifest: one AEAD open per context that
// Unmask kept. A block sealed to someone else gives an error matching
// identity.ErrNotForMe.
func (x *Index) Open() (*Manifest, error) {
	for i, ctx := range x.ctxs {
		if plain, err := ctx.Open(nil, x.ct); err == nil {
			// The key that opens it decides whether the work was full.
			x.FullWork = x.full[i]
			return DecodeManifest(plain)
		}
	}
	return nil, identity.ErrNotForMe
}

// CheckClaim is spec 17.4 step 4: man, opened from x, carries a
// grant_mac that the grant key computes over x's recipient and
// encapsulation and man with grant_mac zero. The comparison takes the
// same time whatever differs.
func (x *Index) CheckClaim(man *Manifest, key *[32]byte) bool {
	m0 := *man
	m0.GrantMAC = [GrantMACSize]byte{}
	want := GrantMAC(key, x.recipient, x.enc, m0.Encode())
	return hmac.Equal(want[:], man.GrantMAC[:])
}

// CheckRoute is the check of spec 6 a recipient makes before fetching a
// listed index block: id shares me's public prefix, min(D, RouteBits)
// leading bits, with me's address.
func CheckRoute(me *identity.Identity, id block.ID) error {
	if cpl, l := block.CommonPrefixLen(id, me.ID()), RoutePrefix(me.Difficulty()); cpl < l {
		return fmt.Errorf("%w: its ID shares %d leading bits with %s, %d needed: %w", ErrNotRoutable, cpl, me.Address(), l, ErrProofOfWork)
	}
	return nil
}

// SealedLen is the bytes an AEAD open of the manifest reads.
func (x *Index) SealedLen() int { return len(x.ct) }
