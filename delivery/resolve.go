package delivery

import (
	"context"
	"crypto/ed25519"
	"fmt"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
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

// checkSender holds an opened mail's signer against the sender's key
// log (9.2, 15.5, KeyState.SignedBy): a revoked or forked sender, or a
// key the sender had retired before the envelope's time, is refused.
// A sender that has not rotated (its pubkey block is its address) and
// whose key log and pubkey block are both gone from the network is not:
// its mail verifies against the address, and no revocation is known. A
// sender that rotated is delivered only once its key log shows the key
// is the address's: without logs it is refused, and when the log cannot
// be read now the error wraps errSenderLogUnread (the mail is retried).
func checkSender(ctx context.Context, logs KeyLogs, o *mail.Opened) error {
	if logs == nil {
		if o.Rotated() {
			return fmt.Errorf("%w: %s signed with pubkey block %s, a later generation's, and this fetch reads no key logs to check it",
				ErrSenderUnverified, o.Sender.Address(), o.Sender.ID.Short())
		}
		return nil
	}
	st, err := logs.KeyState(ctx, o.Sender.Owner)
	switch {
	case err != nil && ctx.Err() != nil:
		return fmt.Errorf("delivery: resolving the sender's key log: %w", err)
	case err != nil && o.Rotated():
		return fmt.Errorf("%w: %w: %s signed with pubkey block %s, a later generation's, and its key log could not be read: %w",
			ErrSenderUnverified, errSenderLogUnread, o.Sender.Address(), o.Sender.ID.Short(), err)
	case err != nil:
		return nil
	}
	var key [ed25519.PublicKeySize]byte
	copy(key[:], o.Sender.SignKey)
	if err := st.SignedBy(key, o.Envelope.Time); err != nil {
		return fmt.Errorf("delivery: sender: %w", err)
	}
	return nil
}
