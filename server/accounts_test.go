package server

import (
	"context"
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
	if err := owner.Register(t.Context(), id, pw, []byte("key file")); err != nil {
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
