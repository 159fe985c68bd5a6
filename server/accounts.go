package server

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/flowmail/flowmail/account"
	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/clock"
	"github.com/flowmail/flowmail/kademlia"
	"github.com/flowmail/flowmail/transport"
)

// Error codes of ERROR answers from the account service, beside those of
// section 8 (docs/PROTOCOL.md 18.5).
const (
	CodeAuthFailed  kademlia.ErrorCode = 13
	CodeRateLimited kademlia.ErrorCode = 14
	CodeNoSession   kademlia.ErrorCode = 15
)

// LabelRegister is the signature label of REGISTER_FINISH.
const LabelRegister = "flowmail/v1 account register"

// AccountsConfig configures the account service.
type AccountsConfig struct {
	// Dir holds the account records (AccountsDir under a data dir).
	Dir   string
	Keys  *account.ServerKeys
	Clock clock.Clock
	// PAKE defaults to account.NewOPAQUE().
	PAKE account.PAKE
	// KSF is what STRETCH answers for an account the server does not
	// hold; zero means account.DefaultKSF. A client registers with the
	// parameters it chooses, within the bounds of 18.2.
	KSF    account.KSFParams
	Logger *slog.Logger
	// Group names the source of a request for the limits per source;
	// nil means transport.DefaultGroup.
	Group func(transport.Peer) transport.Group
}

// Accounts answers the account messages (REGISTER_*, LOGIN_*). It starts
// no goroutines: sessions end by their deadline, checked as requests
// come, so Handle is all there is.
type Accounts struct {
	cfg   AccountsConfig
	store accountStore

	mu       sync.Mutex
	sessions map[[SessionSize]byte]*session
	perSrc   map[transport.Group]int // open sessions per source
	byAcct   *limiter                // logins per account
	bySrc    *limiter                // logins per source
	regSrc   *limiter                // registrations per source
	strAcct  *limiter                // stretches per account
	strSrc   *limiter                // stretches per source
}

type session struct {
	kind     MsgType // TypeRegisterInit or TypeLoginInit
	account  string
	peer     block.ID // the finish must come from the peer that started
	source   transport.Group
	deadline time.Time
	login    account.ServerLogin
	sealed   []byte // nil for an account that does not exist
}

// NewAccounts returns the account service of cfg.
func NewAccounts(cfg AccountsConfig) (*Accounts, error) {
	if cfg.Keys == nil || cfg.Dir == "" {
		return nil, errors.New("server: accounts need keys and a directory")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.PAKE == nil {
		cfg.PAKE = account.NewOPAQUE()
	}
	if cfg.KSF == (account.KSFParams{}) {
		cfg.KSF = account.DefaultKSF
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Group == nil {
		cfg.Group = func(p transport.Peer) transport.Group { return transport.DefaultGroup(p.Addr) }
	}
	return &Accounts{
		cfg:      cfg,
		store:    accountStore{dir: filepath.Clean(cfg.Dir)},
		sessions: map[[SessionSize]byte]*session{},
		perSrc:   map[transport.Group]int{},
		byAcct:   newLimiter(LoginsPerAccount, LimitWindow),
		bySrc:    newLimiter(LoginsPerSource, LimitWindow),
		regSrc:   newLimiter(RegistrationsPerSource, LimitWindow),
		strAcct:  newLimiter(StretchesPerAccount, LimitWindow),
		strSrc:   newLimiter(StretchesPerSource, LimitWindow),
	}, nil
}

// Handle answers one request (a transport.Handler).
func (a *Accounts) Handle(ctx context.Context, from transport.Peer, req []byte) []byte {
	m, refusal := decodeRequest(req)
	if refusal != nil {
		return refusal
	}
	switch m := m.(type) {
	case Stretch:
		return a.stretch(from, m)
	case RegisterInit:
		return a.registerInit(from, m)
	case RegisterFinish:
		return a.registerFinish(from, m)
	case LoginInit:
		return a.loginInit(from, m)
	case LoginFinish:
		return a.loginFinish(from, m)
	}
	// An answer type sent as a request.
	return errorReply(kademlia.CodeMalformed, fmt.Sprintf("%#02x is not a request", uint8(m.Type())))
}

// decodeRequest decodes a request, or gives the ERROR reply that refuses
// it: unknown type or malformed.
func decodeRequest(req []byte) (Message, []byte) {
	m, err := Decode(req)
	if err != nil {
		code := kademlia.CodeMalformed
		if errors.Is(err, ErrUnknownType) {
			code = kademlia.CodeUnknownType
		}
		return nil, errorReply(code, err.Error())
	}
	return m, nil
}

func errorReply(code kademlia.ErrorCode, text string) []byte {
	if len(text) > kademlia.MaxErrorText {
		text = text[:kademlia.MaxErrorText]
	}
	b, err := kademlia.Encode(&kademlia.Error{Code: code, Text: text})
	if err != nil { // text cut inside a UTF-8 sequence: send none
		b, _ = kademlia.Encode(&kademlia.Error{Code: code})
	}
	return b
}

// canonicalAccount checks that acct is an address in its canonical text.
func canonicalAccount(acct string) error {
	id, err := identity.ParseAddress(acct)
	if err != nil {
		return err
	}
	if identity.FormatAddress(id) != acct {
		return fmt.Errorf("account %q is not in canonical form", acct)
	}
	return nil
}

// open starts a session.
func (a *Accounts) open(s *session, now time.Time) ([SessionSize]byte, []byte) {
	var id [SessionSize]byte
	a.mu.Lock()
	defer a.mu.Unlock()
	a.expire(now)
	if len(a.sessions) >= MaxSessions || a.perSrc[s.source] >= MaxSessionsPerSource {
		return id, errorReply(kademlia.CodeOverloaded, "too many open sessions; retry later")
	}
	_, _ = rand.Read(id[:])
	s.deadline = now.Add(SessionTimeout)
	a.sessions[id] = s
	a.perSrc[s.source]++
	return id, nil
}

// take ends the session id and returns it, or nil when there is none
// of that kind for that peer (never opened, finished, expired, another
// peer's): a replayed or out-of-order finish.
func (a *Accounts) take(id [SessionSize]byte, kind MsgType, from transport.Peer, now time.Time) *session {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.expire(now)
	s, ok := a.sessions[id]
	if !ok || s.kind != kind || s.peer != from.ID {
		return nil
	}
	a.drop(id, s)
	return s
}

func (a *Accounts) drop(id [SessionSize]byte, s *session) {
	delete(a.sessions, id)
	if a.perSrc[s.source]--; a.perSrc[s.source] <= 0 {
		delete(a.perSrc, s.source)
	}
}

// expire drops sessions past their deadline; the caller holds a.mu.
func (a *Accounts) expire(now time.Time) {
	for id, s := range a.sessions {
		if !now.Before(s.deadline) {
			a.drop(id, s)
		}
	}
}

// limit is one count an attempt is charged to.
type limit struct {
	l    *limiter
	key  string
	what string // for the error text
}

// charge counts an attempt from src against every limit, or answers
// ERROR when one of them (or the sessions of src) has no room: then
// nothing is counted. Charging before the work, under the lock, keeps
// concurrent attempts within the limits while the OPAQUE work runs
// unlocked.
func (a *Accounts) charge(now time.Time, src transport.Group, limits ...limit) []byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, l := range limits {
		if !l.l.wouldAllow(l.key, now) {
			return errorReply(CodeRateLimited, fmt.Sprintf("too many %s; retry in %s", l.what, l.l.retryAfter(l.key, now).Round(time.Second)))
		}
	}
	a.expire(now)
	if len(a.sessions) >= MaxSessions || a.perSrc[src] >= MaxSessionsPerSource {
		return errorReply(kademlia.CodeOverloaded, "too many open sessions; retry later")
	}
	for _, l := range limits {
		l.l.allow(l.key, now)
	}
	return nil
}

func noSession() []byte {
	return errorReply(CodeNoSession, "no such session: it finished, expired, or was never started")
}

// stretch answers STRETCH: the stretch OPRF and the account's
// parameters. It keeps no state, but is charged per account and per
// source: each answer lets its asker stretch one password guess, so
// unlimited answers would let guesses be stretched ahead of a theft of
// the server's keys (18.6).
func (a *Accounts) stretch(from transport.Peer, m Stretch) []byte {
	if err := canonicalAccount(m.Account); err != nil {
		return errorReply(kademlia.CodeMalformed, err.Error())
	}
	src := a.cfg.Group(from)
	now := a.cfg.Clock.Now()
	if refused := a.charge(now, src,
		limit{a.strAcct, m.Account, "stretches for this account"},
		limit{a.strSrc, src.String(), "stretches from " + src.String()}); refused != nil {
		return refused
	}
	rec, err := a.store.get(m.Account)
	if err != nil {
		a.cfg.Logger.Error("reading account", "err", err)
		return errorReply(kademlia.CodeInternal, "reading the account failed")
	}
	out := StretchResponse{KSF: a.cfg.KSF}
	if rec != nil {
		out.KSF = rec.KSF
	}
	resp, err := a.cfg.PAKE.StretchResponse(a.cfg.Keys, m.Account, m.Request[:])
	if err != nil {
		return errorReply(kademlia.CodeMalformed, err.Error())
	}
	copy(out.Response[:], resp)
	return Encode(out)
}

func (a *Accounts) registerInit(from transport.Peer, m RegisterInit) []byte {
	if err := canonicalAccount(m.Account); err != nil {
		return errorReply(kademlia.CodeMalformed, err.Error())
	}
	src := a.cfg.Group(from)
	now := a.cfg.Clock.Now()
	if refused := a.charge(now, src, limit{a.regSrc, src.String(), "registrations from " + src.String()}); refused != nil {
		return refused
	}
	resp, err := a.cfg.PAKE.RegistrationResponse(a.cfg.Keys, m.Account, m.Request[:])
	if err != nil {
		return errorReply(kademlia.CodeMalformed, err.Error())
	}
	id, refused := a.open(&session{kind: TypeRegisterInit, account: m.Account, peer: from.ID, source: src}, now)
	if refused != nil {
		return refused
	}
	out := RegisterResponse{Session: id}
	copy(out.Response[:], resp)
	return Encode(out)
}

// RegisterSigned is what REGISTER_FINISH's signature covers: the session,
// the account, the KSF parameters of the registration, the OPAQUE record and
// the sealed identity (section 18.5). The session makes it single-use:
// an old registration cannot be replayed to bring back an old password.
func RegisterSigned(session [SessionSize]byte, acct string, ksf account.KSFParams, record, sealed []byte) []byte {
	b := append([]byte(nil), session[:]...)
	b = appendAccount(b, acct)
	b = account.AppendKSF(b, ksf)
	b = append(b, record...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(sealed)))
	return append(b, sealed...)
}

func (a *Accounts) registerFinish(from transport.Peer, m RegisterFinish) []byte {
	s := a.take(m.Session, TypeRegisterInit, from, a.cfg.Clock.Now())
	if s == nil {
		return noSession()
	}
	if err := m.KSF.Check(); err != nil {
		return errorReply(kademlia.CodeMalformed, err.Error())
	}
	if err := a.cfg.PAKE.CheckRecord(m.Record[:]); err != nil {
		return errorReply(kademlia.CodeMalformed, err.Error())
	}
	pub, err := identity.ParsePubkey(m.Pubkey)
	if err != nil {
		return errorReply(kademlia.CodeMalformed, "pubkey: "+err.Error())
	}
	if pub.Address() != s.account {
		return errorReply(kademlia.CodeForbidden, "the pubkey block is not the account's")
	}
	if !pub.Verify(LabelRegister, RegisterSigned(m.Session, s.account, m.KSF, m.Record[:], m.Sealed), m.Signature[:]) {
		return errorReply(kademlia.CodeForbidden, "signature does not verify")
	}
	rec := &account.Record{KSF: m.KSF, OPAQUE: m.Record[:], Sealed: m.Sealed}
	a.mu.Lock() // one writer per account file at a time
	err = a.store.put(s.account, rec)
	if err == nil {
		a.strAcct.reset(s.account) // the owner's stretches are not guesses
	}
	a.mu.Unlock()
	if err != nil {
		a.cfg.Logger.Error("storing account", "err", err)
		return errorReply(kademlia.CodeInternal, "storing the account failed")
	}
	a.cfg.Logger.Info("account registered", "account", s.account)
	b, _ := kademlia.Encode(kademlia.OK{})
	return b
}

func (a *Accounts) loginInit(from transport.Peer, m LoginInit) []byte {
	if err := canonicalAccount(m.Account); err != nil {
		return errorReply(kademlia.CodeMalformed, err.Error())
	}
	src := a.cfg.Group(from)
	now := a.cfg.Clock.Now()
	if refused := a.charge(now, src,
		limit{a.byAcct, m.Account, "login attempts for this account"},
		limit{a.bySrc, src.String(), "login attempts from " + src.String()}); refused != nil {
		return refused
	}
	rec, err := a.store.get(m.Account)
	if err != nil {
		a.cfg.Logger.Error("reading account", "err", err)
		return errorReply(kademlia.CodeInternal, "reading the account failed")
	}
	// An account that does not exist answers like one that does (a
	// fake record): nobody learns which addresses have accounts.
	s := &session{kind: TypeLoginInit, account: m.Account, peer: from.ID, source: src}
	var stored []byte
	if rec != nil {
		stored, s.sealed = rec.OPAQUE, rec.Sealed
	}
	ke2, login, err := a.cfg.PAKE.LoginResponse(a.cfg.Keys, m.Account, stored, m.KE1[:])
	if err != nil {
		return errorReply(kademlia.CodeMalformed, err.Error())
	}
	s.login = login
	id, refused := a.open(s, now)
	if refused != nil {
		return refused
	}
	out := LoginResponse{Session: id}
	copy(out.KE2[:], ke2)
	return Encode(out)
}

func (a *Accounts) loginFinish(from transport.Peer, m LoginFinish) []byte {
	s := a.take(m.Session, TypeLoginInit, from, a.cfg.Clock.Now())
	if s == nil {
		return noSession()
	}
	err := s.login.Finish(m.KE3[:])
	switch {
	case errors.Is(err, account.ErrMalformed):
		return errorReply(kademlia.CodeMalformed, err.Error())
	case err != nil || s.sealed == nil:
		return errorReply(CodeAuthFailed, "authentication failed")
	}
	a.mu.Lock()
	a.byAcct.reset(s.account)
	a.strAcct.reset(s.account)
	a.mu.Unlock()
	return Encode(Sealed{Sealed: s.sealed})
}
