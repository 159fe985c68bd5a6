package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/flowmail/flowmail/account"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/kademlia"
	"github.com/flowmail/flowmail/transport"
)

// Errors of the account client, wrapped with the server's text. A wrong
// password is account.ErrAuthFailed.
var (
	ErrRateLimited = errors.New("server: rate limited")
	ErrNoSession   = errors.New("server: session finished or expired")
	ErrForbidden   = errors.New("server: refused (not the account's key)")
	ErrRefused     = errors.New("server: refused the request")
	ErrBadAnswer   = errors.New("server: answer does not parse or is of the wrong type")
)

// Client runs the device side of the account messages.
type Client struct {
	Transport transport.Transport
	Server    transport.Contact
	// PAKE defaults to account.NewOPAQUE().
	PAKE account.PAKE
}

func (c *Client) pake() account.PAKE {
	if c.PAKE == nil {
		return account.NewOPAQUE()
	}
	return c.PAKE
}

// call sends m and decodes the answer, turning ERROR into typed errors.
func (c *Client) call(ctx context.Context, m Message) (Message, error) {
	resp, _, err := c.Transport.Request(ctx, c.Server, Encode(m))
	if err != nil {
		return nil, err
	}
	if len(resp) > 0 && kademlia.MsgType(resp[0]) == kademlia.TypeError {
		km, err := kademlia.Decode(resp)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadAnswer, err)
		}
		e := km.(*kademlia.Error)
		switch e.Code {
		case CodeAuthFailed:
			return nil, fmt.Errorf("%w: the server says: %s", account.ErrAuthFailed, e.Text)
		case CodeRateLimited:
			return nil, fmt.Errorf("%w: %s", ErrRateLimited, e.Text)
		case CodeNoSession:
			return nil, fmt.Errorf("%w: %s", ErrNoSession, e.Text)
		case kademlia.CodeForbidden:
			return nil, fmt.Errorf("%w: %s", ErrForbidden, e.Text)
		case CodeNotHeld:
			return nil, fmt.Errorf("%w: the server says: %s", ErrNotHeld, e.Text)
		}
		return nil, fmt.Errorf("%w: %s", ErrRefused, e)
	}
	if len(resp) > 0 && kademlia.MsgType(resp[0]) == kademlia.TypeOK && len(resp) == 1 {
		return nil, nil
	}
	a, err := Decode(resp)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadAnswer, err)
	}
	return a, nil
}

// stretch runs STRETCH for acct and returns the secret and the
// parameters it was stretched with: those choose picks given the ones
// the server names. Finish checks them against the bounds first
// (account.ErrKSFBounds), so no server makes a device run weaker
// parameters, or allocate more than the maximum.
func (c *Client) stretch(ctx context.Context, acct string, password []byte, choose func(account.KSFParams) account.KSFParams) ([]byte, account.KSFParams, error) {
	st, req, err := c.pake().StartStretch(acct, password)
	if err != nil {
		return nil, account.KSFParams{}, err
	}
	m := Stretch{Account: acct}
	copy(m.Request[:], req)
	a, err := c.call(ctx, m)
	if err != nil {
		return nil, account.KSFParams{}, err
	}
	resp, ok := a.(StretchResponse)
	if !ok {
		return nil, account.KSFParams{}, fmt.Errorf("%w: %T to STRETCH", ErrBadAnswer, a)
	}
	ksf := choose(resp.KSF)
	secret, err := st.Finish(resp.Response[:], ksf)
	if err != nil {
		return nil, ksf, fmt.Errorf("stretching the password for %s: %w", acct, err)
	}
	return secret, ksf, nil
}

// RegisterKSF is the key-stretching parameters a registration asks for:
// ksf when not zero, else the account's current ones when they are
// stronger than the default (a password change keeps raised parameters),
// else the default. Never weaker than the default.
func RegisterKSF(ksf, current account.KSFParams) account.KSFParams {
	if ksf != (account.KSFParams{}) {
		return ksf
	}
	if current.Check() == nil && current.AtLeast(account.DefaultKSF) {
		return current
	}
	return account.DefaultKSF
}

// Register registers (or re-registers, changing the password) id's
// account with password, uploading keyFile (the identity's key file
// bytes) sealed under the export key. The account is id's address. ksf
// are the key-stretching parameters (zero: RegisterKSF's choice); it
// returns those used.
func (c *Client) Register(ctx context.Context, id *identity.Identity, password, keyFile []byte, ksf account.KSFParams) (account.KSFParams, error) {
	acct := id.Address()
	if id.Public().Address() != acct {
		return ksf, fmt.Errorf("server: %s has rotated its key; accounts hold only identities of their first key", acct)
	}
	if ksf != (account.KSFParams{}) {
		if err := ksf.Check(); err != nil {
			return ksf, err
		}
	}
	// The stretch's answer names the account's current parameters, which
	// a password change keeps when they are raised.
	want := ksf
	secret, ksf, err := c.stretch(ctx, acct, password, func(cur account.KSFParams) account.KSFParams { return RegisterKSF(want, cur) })
	if err != nil {
		return ksf, err
	}
	reg, req, err := c.pake().StartRegistration(acct, secret)
	if err != nil {
		return ksf, err
	}
	init := RegisterInit{Account: acct}
	copy(init.Request[:], req)
	a, err := c.call(ctx, init)
	if err != nil {
		return ksf, err
	}
	resp, ok := a.(RegisterResponse)
	if !ok {
		return ksf, fmt.Errorf("%w: %T to REGISTER_INIT", ErrBadAnswer, a)
	}
	record, export, err := reg.Finish(resp.Response[:])
	if err != nil {
		return ksf, err
	}
	sealed, err := account.Seal(export, acct, keyFile)
	if err != nil {
		return ksf, err
	}
	fin := RegisterFinish{Session: resp.Session, KSF: ksf, Pubkey: id.Public().Block, Sealed: sealed}
	copy(fin.Record[:], record)
	fin.Signature = id.Sign(LabelRegister, RegisterSigned(resp.Session, acct, ksf, record, sealed))
	a, err = c.call(ctx, fin)
	if err != nil {
		return ksf, err
	}
	if a != nil {
		return ksf, fmt.Errorf("%w: %T to REGISTER_FINISH", ErrBadAnswer, a)
	}
	return ksf, nil
}

// Login logs in to acct (an address; any case) with password and
// returns the identity's key file bytes, opened locally. The password is
// stretched with the parameters the server names for the account, only
// when they are within the bounds (account.ErrKSFBounds otherwise).
func (c *Client) Login(ctx context.Context, acct string, password []byte) ([]byte, error) {
	addr, err := identity.ParseAddress(acct)
	if err != nil {
		return nil, err
	}
	acct = identity.FormatAddress(addr)
	secret, _, err := c.stretch(ctx, acct, password, func(k account.KSFParams) account.KSFParams { return k })
	if err != nil {
		return nil, err
	}
	login, ke1, err := c.pake().StartLogin(acct, secret)
	if err != nil {
		return nil, err
	}
	init := LoginInit{Account: acct}
	copy(init.KE1[:], ke1)
	a, err := c.call(ctx, init)
	if err != nil {
		return nil, err
	}
	resp, ok := a.(LoginResponse)
	if !ok {
		return nil, fmt.Errorf("%w: %T to LOGIN_INIT", ErrBadAnswer, a)
	}
	ke3, export, err := login.Finish(resp.KE2[:])
	if err != nil {
		return nil, err
	}
	fin := LoginFinish{Session: resp.Session}
	copy(fin.KE3[:], ke3)
	if a, err = c.call(ctx, fin); err != nil {
		return nil, err
	}
	sealed, ok := a.(Sealed)
	if !ok {
		return nil, fmt.Errorf("%w: %T to LOGIN_FINISH", ErrBadAnswer, a)
	}
	return account.Open(export, acct, sealed.Sealed)
}
