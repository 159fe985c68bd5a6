package server

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/flowmail/flowmail/account"
	"github.com/flowmail/flowmail/block"
)

// MsgType is the first byte of a server message (docs/PROTOCOL.md
// section 18.5). Server messages use the range 0x40 to 0x5f, which
// section 8 reserves for them; answers that section 8 already has (OK,
// ERROR) keep their types.
type MsgType uint8

// Message types of the account service. Numbers are never reused.
const (
	TypeRegisterInit     MsgType = 0x40
	TypeRegisterResponse MsgType = 0x41
	TypeRegisterFinish   MsgType = 0x42
	TypeLoginInit        MsgType = 0x43
	TypeLoginResponse    MsgType = 0x44
	TypeLoginFinish      MsgType = 0x45
	TypeSealed           MsgType = 0x46
	// 0x47 to 0x4d: held mail (heldwire.go); 0x4e and 0x4f reserved.
	TypeStretch         MsgType = 0x50
	TypeStretchResponse MsgType = 0x51

	// FirstType and LastType bound the range section 8 reserves.
	FirstType MsgType = 0x40
	LastType  MsgType = 0x5f
)

// Sizes of the wire (section 18.5).
const (
	SessionSize   = 16
	MaxAccountLen = 128
	SignatureSize = block.SignatureSize
	// MaxPubkeySize bounds the pubkey block a registration carries.
	MaxPubkeySize = block.PubkeySize
)

// Errors of Decode, wrapped with detail. Every error but
// ErrUnknownType also wraps ErrMalformed; test vectors name the finer
// rule (the text after "server: ").
var (
	ErrMalformed    = errors.New("server: malformed message")
	ErrUnknownType  = errors.New("server: unknown message type")
	ErrTruncated    = errors.New("server: truncated")
	ErrTrailing     = errors.New("server: trailing bytes")
	ErrLengthRange  = errors.New("server: length out of range")
	ErrAccountBytes = errors.New("server: account not printable ASCII")
	ErrOrder        = errors.New("server: IDs out of order")
)

// Message is one decoded server message.
type Message interface {
	Type() MsgType
	appendBody([]byte) []byte
}

// RegisterInit starts an OPAQUE registration (or a re-registration:
// a password change) of Account.
type RegisterInit struct {
	Account string
	Request [account.RegistrationRequestSize]byte
}

// Stretch asks for the stretch OPRF of a blinded password (18.2): the
// first step of a login and of a registration.
type Stretch struct {
	Account string
	Request [account.RegistrationRequestSize]byte
}

// StretchResponse answers Stretch: the account's key-stretching
// parameters (the server's default for an account it does not hold) and
// the OPRF's answer.
type StretchResponse struct {
	KSF      account.KSFParams
	Response [account.StretchResponseSize]byte
}

// RegisterResponse answers RegisterInit: the session to finish in and
// OPAQUE's response.
type RegisterResponse struct {
	Session  [SessionSize]byte
	Response [account.RegistrationResponseSize]byte
}

// RegisterFinish uploads the key-stretching parameters the secret was
// stretched with, the OPAQUE record and the sealed identity, signed by
// the identity whose pubkey block it carries.
type RegisterFinish struct {
	Session   [SessionSize]byte
	KSF       account.KSFParams
	Record    [account.RecordSize]byte
	Pubkey    []byte // 1 to MaxPubkeySize bytes
	Sealed    []byte // account.SealOverhead+1 to account.MaxSealedSize bytes
	Signature [SignatureSize]byte
}

// LoginInit starts a login with OPAQUE's KE1.
type LoginInit struct {
	Account string
	KE1     [account.KE1Size]byte
}

// LoginResponse answers LoginInit with KE2.
type LoginResponse struct {
	Session [SessionSize]byte
	KE2     [account.KE2Size]byte
}

// LoginFinish ends a login with KE3.
type LoginFinish struct {
	Session [SessionSize]byte
	KE3     [account.KE3Size]byte
}

// Sealed answers a LoginFinish whose KE3 verified: the sealed identity.
type Sealed struct {
	Sealed []byte // account.SealOverhead+1 to account.MaxSealedSize bytes
}

func (RegisterInit) Type() MsgType     { return TypeRegisterInit }
func (RegisterResponse) Type() MsgType { return TypeRegisterResponse }
func (RegisterFinish) Type() MsgType   { return TypeRegisterFinish }
func (LoginInit) Type() MsgType        { return TypeLoginInit }
func (LoginResponse) Type() MsgType    { return TypeLoginResponse }
func (LoginFinish) Type() MsgType      { return TypeLoginFinish }
func (Sealed) Type() MsgType           { return TypeSealed }
func (Stretch) Type() MsgType          { return TypeStretch }
func (StretchResponse) Type() MsgType  { return TypeStretchResponse }

// Encode returns msg_type || body.
func Encode(m Message) []byte { return m.appendBody([]byte{byte(m.Type())}) }

func appendAccount(b []byte, a string) []byte { return append(append(b, byte(len(a))), a...) }

func appendVec16(b, v []byte) []byte {
	return append(binary.BigEndian.AppendUint16(b, uint16(len(v))), v...)
}

func (m RegisterInit) appendBody(b []byte) []byte {
	return append(appendAccount(b, m.Account), m.Request[:]...)
}

func (m Stretch) appendBody(b []byte) []byte {
	return append(appendAccount(b, m.Account), m.Request[:]...)
}

func (m StretchResponse) appendBody(b []byte) []byte {
	return append(account.AppendKSF(b, m.KSF), m.Response[:]...)
}

func (m RegisterResponse) appendBody(b []byte) []byte {
	return append(append(b, m.Session[:]...), m.Response[:]...)
}

func (m RegisterFinish) appendBody(b []byte) []byte {
	b = append(b, m.Session[:]...)
	b = append(account.AppendKSF(b, m.KSF), m.Record[:]...)
	b = appendVec16(appendVec16(b, m.Pubkey), m.Sealed)
	return append(b, m.Signature[:]...)
}

func (m LoginInit) appendBody(b []byte) []byte {
	return append(appendAccount(b, m.Account), m.KE1[:]...)
}

func (m LoginResponse) appendBody(b []byte) []byte {
	return append(append(b, m.Session[:]...), m.KE2[:]...)
}

func (m LoginFinish) appendBody(b []byte) []byte {
	return append(append(b, m.Session[:]...), m.KE3[:]...)
}

func (m Sealed) appendBody(b []byte) []byte { return appendVec16(b, m.Sealed) }

// reader reads a body with a length check before every field.
type reader struct {
	b    []byte
	what MsgType
	err  error
}

func (r *reader) fail(rule error, format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %w: %#02x: %s", ErrMalformed, rule, uint8(r.what), fmt.Sprintf(format, args...))
	}
}

func (r *reader) take(n int, field string) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.fail(ErrTruncated, "%s: %d bytes left, want %d", field, len(r.b), n)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) fixed(dst []byte, field string) { copy(dst, r.take(len(dst), field)) }

// account reads acct_len u8 (1 to MaxAccountLen) and that many printable
// ASCII bytes.
func (r *reader) account() string {
	n := r.take(1, "acct_len")
	if r.err != nil {
		return ""
	}
	if n[0] == 0 || int(n[0]) > MaxAccountLen {
		r.fail(ErrLengthRange, "acct_len %d, want 1 to %d", n[0], MaxAccountLen)
		return ""
	}
	a := r.take(int(n[0]), "account")
	for _, c := range a {
		if c <= 0x20 || c >= 0x7f {
			r.fail(ErrAccountBytes, "account holds byte %#02x (printable ASCII only)", c)
			return ""
		}
	}
	return string(a)
}

// vec16 reads len u16 within [lo, hi] and that many bytes, copied.
func (r *reader) vec16(field string, lo, hi int) []byte {
	nb := r.take(2, field+"_len")
	if r.err != nil {
		return nil
	}
	n := int(binary.BigEndian.Uint16(nb))
	if n < lo || n > hi {
		r.fail(ErrLengthRange, "%s_len %d, want %d to %d", field, n, lo, hi)
		return nil
	}
	return append([]byte(nil), r.take(n, field)...)
}

func (r *reader) ksf() account.KSFParams {
	b := r.take(account.KSFSize, "ksf")
	if r.err != nil {
		return account.KSFParams{}
	}
	p, _ := account.ParseKSF(b) // fails on its length only, checked by take
	return p
}

// Decode parses one server message: every length is checked before the
// field is read, and trailing bytes are refused.
func Decode(b []byte) (Message, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: %w: empty message", ErrMalformed, ErrTruncated)
	}
	t := MsgType(b[0])
	r := &reader{b: b[1:], what: t}
	var m Message
	switch t {
	case TypeRegisterInit:
		var v RegisterInit
		v.Account = r.account()
		r.fixed(v.Request[:], "request")
		m = v
	case TypeStretch:
		var v Stretch
		v.Account = r.account()
		r.fixed(v.Request[:], "request")
		m = v
	case TypeStretchResponse:
		var v StretchResponse
		v.KSF = r.ksf()
		r.fixed(v.Response[:], "response")
		m = v
	case TypeRegisterResponse:
		var v RegisterResponse
		r.fixed(v.Session[:], "session")
		r.fixed(v.Response[:], "response")
		m = v
	case TypeRegisterFinish:
		var v RegisterFinish
		r.fixed(v.Session[:], "session")
		v.KSF = r.ksf()
		r.fixed(v.Record[:], "record")
		v.Pubkey = r.vec16("pubkey", 1, MaxPubkeySize)
		v.Sealed = r.vec16("sealed", account.SealOverhead+1, account.MaxSealedSize)
		r.fixed(v.Signature[:], "signature")
		m = v
	case TypeLoginInit:
		var v LoginInit
		v.Account = r.account()
		r.fixed(v.KE1[:], "ke1")
		m = v
	case TypeLoginResponse:
		var v LoginResponse
		r.fixed(v.Session[:], "session")
		r.fixed(v.KE2[:], "ke2")
		m = v
	case TypeLoginFinish:
		var v LoginFinish
		r.fixed(v.Session[:], "session")
		r.fixed(v.KE3[:], "ke3")
		m = v
	case TypeSealed:
		var v Sealed
		v.Sealed = r.vec16("sealed", account.SealOverhead+1, account.MaxSealedSize)
		m = v
	default:
		v, ok := decodeHeld(t, r)
		if !ok {
			return nil, fmt.Errorf("%w: %#02x", ErrUnknownType, uint8(t))
		}
		m = v
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %w: %#02x: %d bytes after the message", ErrMalformed, ErrTrailing, uint8(t), len(r.b))
	}
	return m, nil
}
