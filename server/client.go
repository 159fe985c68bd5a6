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

// Register registers (or re-registers, changing the password) id's
// account with password, uploading keyFile (the identity's key file
// bytes) sealed under the export key. The account is id's address.
func (c *Client) Register(ctx context.Context, id *identity.Identity, password, keyFile []byte) error {
	acct := id.Address()
	if id.Public().Address() != acct {
		return fmt.Errorf("server: %s has rotated its key; accounts hold only identities of their first key", acct)
	}
	reg, req, err := c.pake().StartRegistration(acct, password)
	if err != nil {
		return err
	}
	init := RegisterInit{Account: acct}
	copy(init.Request[:], req)
	a, err := c.call(ctx, init)
	if err != nil {
		return err
	}
	resp, ok := a.(RegisterResponse)
	if !ok {
		return fmt.Errorf("%w: %T to REGISTER_INIT", ErrBadAnswer, a)
	}
	record, export, err := reg.Finish(resp.Response[:], resp.KSF)
	if err != nil {
		return err
	}
	sealed, err := account.Seal(export, acct, keyFile)
	if err != nil {
		return err
	}
	fin := RegisterFinish{Session: resp.Session, Pubkey: id.Public().Block, Sealed: sealed}
	copy(fin.Record[:], record)
	fin.Signature = id.Sign(LabelRegister, RegisterSigned(resp.Session, acct, resp.KSF, record, sealed))
	a, err = c.call(ctx, fin)
	if err != nil {
		return err
	}
	if a != nil {
		return fmt.Errorf("%w: %T to REGISTER_FINISH", ErrBadAnswer, a)
	}
	return nil
}

// Login logs in to acct (an address; any case) with password and
// returns the identity's key file bytes, opened locally.
func (c *Client) Login(ctx context.Context, acct string, password []byte) ([]byte, error) {
	addr, err := identity.ParseAddress(acct)
	if err != nil {
		return nil, err
	}
	acct = identity.FormatAddress(addr)
	login, ke1, err := c.pake().StartLogin(acct, password)
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
	ke3, export, err := login.Finish(resp.KE2[:], resp.KSF)
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
