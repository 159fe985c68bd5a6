package testnet

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
)

// User is an identity with a home directory laid out as the CLI lays it
// out: identity.key, Maildir/, state/.
type User struct {
	*identity.Identity
	Home string
}

// NewUser creates an identity demanding difficulty bits and writes its
// unprotected key file under home.
func NewUser(home string, difficulty int) (*User, error) {
	id, err := identity.Generate(difficulty, time.Now())
	if err != nil {
		return nil, err
	}
	if err := identity.WriteKeyFile(filepath.Join(home, "identity.key"), id, identity.KeyFileOptions{NoPassphrase: true}); err != nil {
		return nil, err
	}
	return &User{Identity: id, Home: home}, nil
}

// Maildir is where the user's mail is delivered.
func (u *User) Maildir() string { return filepath.Join(u.Home, "Maildir") }

// StateDir holds the user's processed set.
func (u *User) StateDir() string { return filepath.Join(u.Home, "state") }

// SendMail looks up the recipients' pubkey blocks through net, builds msg
// for them in memory, and stores it. progress may be nil.
func SendMail(ctx context.Context, net delivery.Network, from *identity.Identity, to []block.ID, msg []byte, progress func(mail.Progress)) (*mail.Built, error) {
	keys := make([]*identity.PublicKey, len(to))
	for i, addr := range to {
		k, err := delivery.LookupPubkey(ctx, net, addr)
		if err != nil {
			return nil, err
		}
		keys[i] = k
	}
	codec, err := mail.NewCodec()
	if err != nil {
		return nil, err
	}
	defer codec.Close()
	built, err := codec.Build(ctx, mail.BuildInput{Sender: from, Recipients: keys, Message: bytes.NewReader(msg), Size: int64(len(msg)), Now: time.Now()},
		mail.BuildOptions{Progress: progress})
	if err != nil {
		return nil, err
	}
	if err := delivery.Store(ctx, net, built, delivery.SendOptions{Progress: progress}); err != nil {
		built.Release()
		return nil, fmt.Errorf("storing the mail: %w", err)
	}
	return built, nil
}

// FetchMail fetches u's new mail through net into u's Maildir.
func FetchMail(ctx context.Context, net delivery.Network, u *User, opt delivery.FetchOptions) (*delivery.FetchReport, error) {
	st, err := mailbox.OpenState(u.StateDir())
	if err != nil {
		return nil, err
	}
	defer st.Close()
	codec, err := mail.NewCodec()
	if err != nil {
		return nil, err
	}
	defer codec.Close()
	if opt.Maildir == "" {
		opt.Maildir = u.Maildir()
	}
	if opt.Now.IsZero() {
		opt.Now = time.Now()
	}
	return delivery.Fetch(ctx, net, codec, u.Identity, st, opt)
}
