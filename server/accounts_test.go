package server

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/flowmail/flowmail/account"
	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/clock"
	"github.com/flowmail/flowmail/kademlia"
	"github.com/flowmail/flowmail/transport"
)

func newAccounts(t *testing.T, clk clock.Clock) *Accounts {
	t.Helper()
	keys, err := account.GenerateServerKeys()
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAccounts(AccountsConfig{Dir: t.TempDir(), Keys: keys, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// peer is a verified peer at 10.0.<src>.1: one source per src.
func peer(id byte, src byte) transport.Peer {
	return transport.Peer{ID: block.ID{id}, Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, src, 1}), 4410)}
}

func testAddress(i int) string { return identity.FormatAddress(block.ID{0xa0, byte(i >> 8), byte(i)}) }

func loginInit(t *testing.T, acct string) []byte {
	t.Helper()
	_, ke1, err := account.NewOPAQUE().StartLogin(acct, []byte("guess"))
	if err != nil {
		t.Fatal(err)
	}
	m := LoginInit{Account: acct}
	copy(m.KE1[:], ke1)
	return Encode(m)
}

// code is the ERROR code of an answer, 0 for any other answer.
func code(t *testing.T, answer []byte) kademlia.ErrorCode {
	t.Helper()
	if len(answer) == 0 || kademlia.MsgType(answer[0]) != kademlia.TypeError {
		return 0
	}
	m, err := kademlia.Decode(answer)
	if err != nil {
		t.Fatalf("ERROR answer does not decode: %v", err)
	}
	return m.(*kademlia.Error).Code
}

func TestLoginAttemptsAreLimitedPerAccountAndPerSource(t *testing.T) {
	clk := &clock.Offset{}
	a := newAccounts(t, clk)
	victim := testAddress(0)
	for i := range LoginsPerAccount {
		if c := code(t, a.Handle(t.Context(), peer(1, byte(i)), loginInit(t, victim))); c != 0 {
			t.Fatalf("attempt %d on the account: error %v", i, c)
		}
	}
	// From any source, the account is now closed for the window.
	if c := code(t, a.Handle(t.Context(), peer(2, 200), loginInit(t, victim))); c != CodeRateLimited {
		t.Fatalf("attempt past the account's limit: %v, want rate limited", c)
	}
	// One source guessing across accounts meets the limit per source.
	for i := range LoginsPerSource {
		if c := code(t, a.Handle(t.Context(), peer(3, 100), loginInit(t, testAddress(i+1)))); c != 0 {
			t.Fatalf("attempt %d from one source: error %v", i, c)
		}
		if i%10 == 9 { // keep the open sessions of that source below their bound
			clk.Advance(SessionTimeout)
		}
	}
	if c := code(t, a.Handle(t.Context(), peer(3, 100), loginInit(t, testAddress(999)))); c != CodeRateLimited {
		t.Fatalf("attempt past the source's limit: %v, want rate limited", c)
	}
	clk.Advance(LimitWindow)
	if c := code(t, a.Handle(t.Context(), peer(2, 200), loginInit(t, victim))); c != 0 {
		t.Fatalf("after the window: %v, want an answer", c)
	}
}

func TestOpenSessionsPerSourceAreBounded(t *testing.T) {
	a := newAccounts(t, nil)
	for i := range MaxSessionsPerSource {
		if c := code(t, a.Handle(t.Context(), peer(1, 1), loginInit(t, testAddress(i)))); c != 0 {
			t.Fatalf("session %d: error %v", i, c)
		}
	}
	if c := code(t, a.Handle(t.Context(), peer(1, 1), loginInit(t, testAddress(500)))); c != kademlia.CodeOverloaded {
		t.Fatalf("one session too many: %v, want overloaded", c)
	}
	if c := code(t, a.Handle(t.Context(), peer(1, 2), loginInit(t, testAddress(500)))); c != 0 {
		t.Fatalf("another source: %v, want an answer", c)
	}
}

func TestFinishOutsideItsSessionIsRefused(t *testing.T) {
	clk := &clock.Offset{}
	a := newAccounts(t, clk)
	start := func() [SessionSize]byte {
		m, err := Decode(a.Handle(t.Context(), peer(1, 1), loginInit(t, testAddress(1))))
		if err != nil {
			t.Fatal(err)
		}
		return m.(LoginResponse).Session
	}
	finish := func(p transport.Peer, s [SessionSize]byte) kademlia.ErrorCode {
		return code(t, a.Handle(t.Context(), p, Encode(LoginFinish{Session: s})))
	}
	if c := finish(peer(1, 1), [SessionSize]byte{1}); c != CodeNoSession {
		t.Fatalf("finish with no start: %v, want no session", c)
	}
	s := start()
	if c := finish(peer(2, 1), s); c != CodeNoSession {
		t.Fatalf("finish from another peer: %v, want no session", c)
	}
	if c := finish(peer(1, 1), s); c != CodeAuthFailed {
		t.Fatalf("finish with a wrong KE3: %v, want auth failed", c)
	}
	if c := finish(peer(1, 1), s); c != CodeNoSession {
		t.Fatalf("finish replayed: %v, want no session", c)
	}
	s = start()
	if c := code(t, a.Handle(t.Context(), peer(1, 1), Encode(RegisterFinish{Session: s, Pubkey: []byte{1}, Sealed: make([]byte, account.SealOverhead+1)}))); c != CodeNoSession {
		t.Fatalf("a registration finish in a login session: %v, want no session", c)
	}
	s = start()
	clk.Advance(SessionTimeout)
	if c := finish(peer(1, 1), s); c != CodeNoSession {
		t.Fatalf("finish after the deadline: %v, want no session", c)
	}
}

func TestMalformedRequestsAreAnsweredWithTheirError(t *testing.T) {
	a := newAccounts(t, nil)
	lower := LoginInit{Account: strings.ToUpper(testAddress(1))}
	for _, tc := range []struct {
		name string
		req  []byte
		want kademlia.ErrorCode
	}{
		{"empty", nil, kademlia.CodeMalformed},
		{"truncated LOGIN_INIT", loginInit(t, testAddress(1))[:50], kademlia.CodeMalformed},
		{"unknown type in the range", []byte{0x5f}, kademlia.CodeUnknownType},
		{"an answer as a request", Encode(Sealed{Sealed: make([]byte, account.SealOverhead+1)}), kademlia.CodeMalformed},
		{"account not in canonical form", Encode(lower), kademlia.CodeMalformed},
		{"KE1 off the group", Encode(LoginInit{Account: testAddress(1), KE1: [account.KE1Size]byte{0: 0xff, 1: 0xff}}), kademlia.CodeMalformed},
	} {
		if c := code(t, a.Handle(t.Context(), peer(1, 1), tc.req)); c != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, c, tc.want)
		}
	}
}

// direct is a transport that hands requests to an Accounts in process.
type direct struct {
	a    *Accounts
	from transport.Peer
}

func (d direct) Request(ctx context.Context, _ transport.Contact, req []byte) ([]byte, transport.Peer, error) {
	return d.a.Handle(ctx, d.from, req), transport.Peer{}, nil
}
func (direct) LocalAddr() netip.AddrPort { return netip.AddrPort{} }
func (direct) Close() error              { return nil }

// TestLoginClearsTheAccountsCount: the owner's own login clears the
// guesses counted against the account, so only a guesser who keeps
// going locks it.
func TestLoginClearsTheAccountsCount(t *testing.T) {
	a := newAccounts(t, nil)
	id, err := identity.Generate(0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pw := []byte("the owner's password")
	owner := &Client{Transport: direct{a, peer(1, 1)}}
	if _, err := owner.Register(t.Context(), id, pw, []byte("key file"), account.KSFParams{}); err != nil {
		t.Fatal(err)
	}
	for i := range LoginsPerAccount - 1 { // a guesser, from elsewhere
		if c := code(t, a.Handle(t.Context(), peer(2, byte(10+i)), loginInit(t, id.Address()))); c != 0 {
			t.Fatalf("guess %d: %v", i, c)
		}
	}
	if got, err := owner.Login(t.Context(), id.Address(), pw); err != nil || string(got) != "key file" {
		t.Fatalf("owner's login: %q, %v", got, err)
	}
	for i := range LoginsPerAccount {
		if c := code(t, a.Handle(t.Context(), peer(2, byte(100+i)), loginInit(t, id.Address()))); c != 0 {
			t.Fatalf("guess %d after the owner's login: %v, want an answer (the count was cleared)", i, c)
		}
	}
	if c := code(t, a.Handle(t.Context(), peer(2, 200), loginInit(t, id.Address()))); c != CodeRateLimited {
		t.Fatalf("guess past the limit: %v, want rate limited", c)
	}
}

// hostile is a "server" that answers STRETCH with the parameters it
// likes, and counts what else it is asked.
type hostile struct {
	ksf   account.KSFParams
	other int
}

func (h *hostile) Request(ctx context.Context, _ transport.Contact, req []byte) ([]byte, transport.Peer, error) {
	if m, err := Decode(req); err == nil && m.Type() == TypeStretch {
		st := m.(Stretch)
		// A real stretch answer, so only the parameters are wrong.
		keys, err := account.GenerateServerKeys()
		if err != nil {
			return nil, transport.Peer{}, err
		}
		resp, err := account.NewOPAQUE().StretchResponse(keys, st.Account, st.Request[:])
		if err != nil {
			return nil, transport.Peer{}, err
		}
		out := StretchResponse{KSF: h.ksf}
		copy(out.Response[:], resp)
		return Encode(out), transport.Peer{}, nil
	}
	h.other++
	return errorReply(kademlia.CodeInternal, "not here"), transport.Peer{}, nil
}
func (*hostile) LocalAddr() netip.AddrPort { return netip.AddrPort{} }
func (*hostile) Close() error              { return nil }

// TestClientRefusesParametersOutOfBounds: a server that names weaker
// parameters than the minimum, or more memory than the maximum, gets a
// clear error and nothing more: no Argon2id runs, no LOGIN_INIT is sent.
func TestClientRefusesParametersOutOfBounds(t *testing.T) {
	for _, k := range []account.KSFParams{
		{ID: account.KSFArgon2id, Time: 1, MemoryKiB: 64 << 10, Lanes: 4},
		{ID: account.KSFArgon2id, Time: 3, MemoryKiB: 8 << 10, Lanes: 4},
		{ID: account.KSFArgon2id, Time: 3, MemoryKiB: 1 << 30, Lanes: 4}, // 1 TiB
		{ID: account.KSFArgon2id, Time: 1 << 20, MemoryKiB: 64 << 10, Lanes: 4},
	} {
		h := &hostile{ksf: k}
		cl := &Client{Transport: h}
		_, err := cl.Login(t.Context(), testAddress(1), []byte("the password"))
		if !errors.Is(err, account.ErrKSFBounds) || !strings.Contains(err.Error(), "stretching the password") {
			t.Errorf("%v: %v, want account.ErrKSFBounds", k, err)
		}
		if h.other != 0 {
			t.Errorf("%v: the client went on with %d requests", k, h.other)
		}
	}
}

// TestRaisedParametersRegisterAndLogIn: an account registered with
// raised parameters is stretched with them at every login; a password
// change without parameters keeps them; a registration below the
// minimum is refused by the client and by the server.
func TestRaisedParametersRegisterAndLogIn(t *testing.T) {
	a := newAccounts(t, nil)
	id, err := identity.Generate(0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pw := []byte("the owner's password")
	raised := account.KSFParams{ID: account.KSFArgon2id, Time: 4, MemoryKiB: 72 << 10, Lanes: 4}
	owner := &Client{Transport: direct{a, peer(1, 1)}}
	if got, err := owner.Register(t.Context(), id, pw, []byte("key file"), raised); err != nil || got != raised {
		t.Fatalf("register with %v: %v, %v", raised, got, err)
	}
	rec, err := a.store.get(id.Address())
	if err != nil || rec == nil || rec.KSF != raised {
		t.Fatalf("stored record: %+v, %v; want parameters %v", rec, err, raised)
	}
	laptop := &Client{Transport: direct{a, peer(2, 2)}}
	if got, err := laptop.Login(t.Context(), id.Address(), pw); err != nil || string(got) != "key file" {
		t.Fatalf("login: %q, %v", got, err)
	}
	if got, err := owner.Register(t.Context(), id, []byte("a new password"), []byte("key file"), account.KSFParams{}); err != nil || got != raised {
		t.Fatalf("password change: %v, %v; want the raised parameters kept", got, err)
	}
	low := account.KSFParams{ID: account.KSFArgon2id, Time: 2, MemoryKiB: 64 << 10, Lanes: 4}
	if _, err := owner.Register(t.Context(), id, pw, []byte("key file"), low); !errors.Is(err, account.ErrKSFBounds) {
		t.Fatalf("register with %v: %v, want account.ErrKSFBounds", low, err)
	}
	// A client that sends them anyway: the server refuses before the
	// signature, and keeps the account as it was.
	_, req, _ := account.NewOPAQUE().StartRegistration(id.Address(), []byte("secret"))
	init := RegisterInit{Account: id.Address()}
	copy(init.Request[:], req)
	resp, err := Decode(a.Handle(t.Context(), peer(1, 1), Encode(init)))
	if err != nil {
		t.Fatal(err)
	}
	fin := RegisterFinish{Session: resp.(RegisterResponse).Session, KSF: low, Pubkey: id.Public().Block, Sealed: make([]byte, account.SealOverhead+1)}
	if c := code(t, a.Handle(t.Context(), peer(1, 1), Encode(fin))); c != kademlia.CodeMalformed {
		t.Fatalf("REGISTER_FINISH with %v: %v, want malformed", low, c)
	}
	if rec, _ := a.store.get(id.Address()); rec == nil || rec.KSF != raised {
		t.Fatalf("after the refused registration: %+v", rec)
	}
}

// TestStretchesAreLimitedPerAccount: each STRETCH answer lets its asker
// stretch one guess, so they are counted like logins.
func TestStretchesAreLimitedPerAccount(t *testing.T) {
	a := newAccounts(t, nil)
	_, req, err := account.NewOPAQUE().StartStretch(testAddress(1), []byte("guess"))
	if err != nil {
		t.Fatal(err)
	}
	m := Stretch{Account: testAddress(1)}
	copy(m.Request[:], req)
	for i := range StretchesPerAccount {
		ans := a.Handle(t.Context(), peer(1, byte(i)), Encode(m))
		if got, err := Decode(ans); err != nil || got.(StretchResponse).KSF != account.DefaultKSF {
			t.Fatalf("stretch %d: %v, %v; want an answer with the default parameters", i, got, err)
		}
	}
	if c := code(t, a.Handle(t.Context(), peer(2, 200), Encode(m))); c != CodeRateLimited {
		t.Fatalf("stretch past the account's limit: %v, want rate limited", c)
	}
}
