package delivery

import (
	"context"
	"fmt"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/record"
)

// KeyLogs resolves an address to what its key log says now
// (docs/PROTOCOL.md 15.5): *kademlia.DHT is one. An identity with no key
// log in the network is at its inception.
type KeyLogs interface {
	KeyState(ctx context.Context, address block.ID) (record.KeyState, error)
}

// ResolveRecipient is what a sender does before sealing to addr
// (15.5): it resolves addr's key log and returns the current pubkey
// block, owned by addr, so the mail is addressed to addr and sealed to
// the current key. An identity that revoked its key, moved, or whose key
// history forked is refused with record.ErrRevoked, record.ErrMoved or
// record.ErrForked (the state says more: the new address of a move).
func ResolveRecipient(ctx context.Context, net Network, logs KeyLogs, addr block.ID) (*identity.PublicKey, record.KeyState, error) {
	st, err := logs.KeyState(ctx, addr)
	if err != nil {
		return nil, st, fmt.Errorf("delivery: resolving the key of %s: %w", identity.FormatAddress(addr), err)
	}
	if err := st.Sendable(); err != nil {
		return nil, st, fmt.Errorf("delivery: %w", err)
	}
	if st.Generation == 0 {
		return st.Inception, st, nil
	}
	p, err := LookupPubkey(ctx, net, st.Pubkey)
	if err != nil {
		return nil, st, fmt.Errorf("delivery: the key log of %s names pubkey block %s: %w", identity.FormatAddress(addr), st.Pubkey.Short(), err)
	}
	if err := st.CheckPubkey(p); err != nil {
		return nil, st, fmt.Errorf("delivery: %w", err)
	}
	return p.At(addr), st, nil
}
