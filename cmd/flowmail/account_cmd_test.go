package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flowmail/flowmail/account"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/nsdtest"
	"github.com/flowmail/flowmail/server"
	"github.com/flowmail/flowmail/transport"
)

// TestPasswordLoginOnAFreshHome: `flowmail server` joins a testnet;
// alice registers her identity from her home; on a fresh home with only
// the password she logs in and fetches mail sent to her address; a
// password change keeps the identity; wrong passwords fail clearly and
// then meet the limit per account. With nsd, the domain's DNS record
// names the server and alice logs in by her name.
func TestPasswordLoginOnAFreshHome(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a loopback testnet and a server")
	}
	ctx := hangGuard(t)
	net := startTestTestnet(t, ctx, 3, t.TempDir())
	boot := net.Contacts()[0]
	rn := startNodeCommand(t, "--home", t.TempDir(), "server", "--listen", "127.0.0.1:0", "--account-listen", "127.0.0.1:0",
		"--admin", "127.0.0.1:0", "--no-mainline", "--reachability", "public", "--network", net.Network(),
		"--bootstrap", boot.ID.String()+"@"+boot.Addr.String())
	var srv, srvID string
	re := regexp.MustCompile(`--server (127\.0\.0\.1:\d+)`)
	idRE := regexp.MustCompile(`flowmail delegate (fm1\S+) --server`)
	for _, l := range rn.lines {
		if m := re.FindStringSubmatch(l); m != nil {
			srv = m[1]
		}
		if m := idRE.FindStringSubmatch(l); m != nil {
			srvID = m[1]
		}
	}
	if srv == "" || srvID == "" {
		t.Fatalf("the server did not print its account address and node address:\n%s", strings.Join(rn.lines, "\n"))
	}
	// Cheap key files: the key file's scrypt is not what this tests, and
	// under -race it costs seconds each.
	acct := func(args ...string) []string {
		return append(args, "--server", srv, "--network", net.Network(), "--scrypt-log-n", "10")
	}

	homes := t.TempDir()
	home := func(name string) string { return filepath.Join(homes, name) }
	if _, stderr, err := runCLI(t, "--home", home("alice"), "init", "--no-passphrase", "--difficulty", "8"); err != nil {
		t.Fatalf("init: %v\n%s", err, stderr)
	}
	who, _, err := runCLI(t, "--home", home("alice"), "whoami")
	if err != nil {
		t.Fatal(err)
	}
	alice := strings.TrimSpace(who)
	if _, stderr, err := runCLI(t, "--home", home("alice"), "publish", "--testnet", net.Dir()); err != nil {
		t.Fatalf("publish: %v\n%s", err, stderr)
	}

	const pw = "purple monkey dishwasher"
	t.Setenv("FLOWMAIL_ACCOUNT_PASSWORD", pw)

	// With a real DNS server, alice's domain names its server (srv=,
	// at=) and certifies her name: she registers by her domain and logs
	// in by her name, with no --server. Without nsd, by address.
	loginArgs, byName := acct("--home", home("laptop"), "login", alice), false
	if _, err := nsdtest.Binary(); err != nil {
		t.Logf("by address only: %v", err)
		if _, stderr, err := runCLI(t, acct("--home", home("alice"), "account", "create")...); err != nil {
			t.Fatalf("account create: %v\n%s", err, stderr)
		}
	} else {
		owner := filepath.Join(homes, "owner")
		zone, stderr, err := runCLI(t, "--home", owner, "domain", "init", "--no-passphrase", "--srv", srvID, "--at", srv, "example.test")
		if err != nil {
			t.Fatalf("domain init: %v\n%s", err, stderr)
		}
		dns := nsdtest.Start(t, ctx, "example.test", zone)
		req := filepath.Join(home("alice"), "name.request")
		if _, stderr, err := runCLI(t, "--home", home("alice"), "domain", "request", "--dns-server", dns.Addr, "--out", req, "alice@example.test"); err != nil {
			t.Fatalf("domain request: %v\n%s", err, stderr)
		}
		if _, stderr, err := runCLI(t, "--home", owner, "domain", "sign", "--testnet", net.Dir(), req); err != nil {
			t.Fatalf("domain sign: %v\n%s", err, stderr)
		}
		out, stderr, err := runCLI(t, "--home", home("alice"), "account", "create", "example.test", "--dns-server", dns.Addr,
			"--network", net.Network(), "--scrypt-log-n", "10")
		if err != nil {
			t.Fatalf("account create example.test: %v\n%s", err, stderr)
		}
		if !strings.Contains(out, "--server "+srv) {
			t.Errorf("account create by domain does not say how to log in: %s", out)
		}
		named := []string{"--home", home("laptop"), "login", "alice@example.test", "--testnet", net.Dir(), "--dns-server", dns.Addr, "--scrypt-log-n", "10"}
		// The record's srv= pins the server: another node at --server is refused.
		other := net.Contacts()[1].Addr.String()
		if _, _, err := runCLI(t, append(named, "--server", other)...); err == nil || !strings.Contains(err.Error(), "srv=") {
			t.Fatalf("login by name against another node: %v, want the server's ID refused", err)
		}
		loginArgs, byName = named, true
	}

	// The fresh home has nothing but the password.
	if _, stderr, err := runCLI(t, loginArgs...); err != nil {
		t.Fatalf("login: %v\n%s", err, stderr)
	}
	if got, stderr, err := runCLI(t, "--home", home("laptop"), "whoami"); err != nil || strings.TrimSpace(got) != alice {
		t.Fatalf("whoami on the fresh home: %q, %v; want %s", got, err, alice)
	} else if byName && !strings.Contains(stderr, "name:       alice@example.test") {
		t.Errorf("whoami after login by name does not show the name:\n%s", stderr)
	}

	if _, stderr, err := runCLI(t, "--home", home("bob"), "init", "--no-passphrase", "--difficulty", "8"); err != nil {
		t.Fatalf("init bob: %v\n%s", err, stderr)
	}
	if _, stderr, err := runCLI(t, "--home", home("bob"), "send", "--testnet", net.Dir(), "--to", alice,
		"--subject", "hello laptop", "--body", "Fetched with nothing but a password."); err != nil {
		t.Fatalf("send: %v\n%s", err, stderr)
	}
	t.Setenv("FLOWMAIL_PASSPHRASE", pw) // the key file login wrote is protected by the password
	if _, stderr, err := runCLI(t, "--home", home("laptop"), "fetch", "--testnet", net.Dir()); err != nil {
		t.Fatalf("fetch: %v\n%s", err, stderr)
	}
	if !maildirHolds(t, filepath.Join(home("laptop"), "Maildir"), "Fetched with nothing but a password.") {
		t.Fatal("the mail sent to alice is not in the fresh home's Maildir")
	}

	// A new password; the old one stops working, the identity stays.
	const pw2 = "correct horse battery staple"
	t.Setenv("FLOWMAIL_ACCOUNT_PASSWORD", pw2)
	// The change raises the password's stretching too; the new device
	// logs in with what the server names.
	if out, stderr, err := runCLI(t, acct("--home", home("alice"), "account", "password", "--argon2-memory", "72", "--argon2-time", "4")...); err != nil {
		t.Fatalf("account password: %v\n%s", err, stderr)
	} else if !strings.Contains(out, "Argon2id t=4 m=73728 KiB p=4") {
		t.Errorf("account password does not say the raised parameters:\n%s", out)
	}
	if _, _, err := runCLI(t, acct("--home", home("alice"), "account", "password", "--argon2-memory", "32")...); err == nil || !strings.Contains(err.Error(), "--argon2-memory 32 MiB") {
		t.Fatalf("account password below the minimum: %v, want the flag named", err)
	}
	if _, stderr, err := runCLI(t, acct("--home", home("phone"), "login", alice)...); err != nil {
		t.Fatalf("login with the new password: %v\n%s", err, stderr)
	}
	if got, _, _ := runCLI(t, "--home", home("phone"), "whoami"); strings.TrimSpace(got) != alice {
		t.Fatalf("whoami after the password change: %q, want %s", got, alice)
	}

	// Wrong passwords: a clear error, then the limit per account.
	t.Setenv("FLOWMAIL_ACCOUNT_PASSWORD", pw)
	_, _, err = runCLI(t, acct("--home", home("thief"), "login", alice)...)
	if err == nil || !strings.Contains(err.Error(), "wrong password") {
		t.Fatalf("login with the old password: %v, want a wrong-password error", err)
	}
	if _, err := os.Stat(filepath.Join(home("thief"), "identity.key")); err == nil {
		t.Fatal("a failed login wrote an identity")
	}
	// The rest of the hour's attempts, sent as bare LOGIN_INITs (the
	// exact count is server's test): the next login is refused.
	key, err := identity.Generate(0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tr, err := transport.ListenQUIC(ctx, transport.QUICConfig{Identity: key, Network: net.Network(), ListenAddr: "127.0.0.1:0", Client: true,
		DialTimeout: testRequestTimeout, HandshakeTimeout: testRequestTimeout, RequestTimeout: testRequestTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for i := 1; i < server.LoginsPerAccount; i++ {
		_, ke1, err := account.NewOPAQUE().StartLogin(alice, []byte("guess"))
		if err != nil {
			t.Fatal(err)
		}
		m := server.LoginInit{Account: alice}
		copy(m.KE1[:], ke1)
		resp, _, err := tr.Request(ctx, transport.Contact{Addr: netip.MustParseAddrPort(srv)}, server.Encode(m))
		if err != nil || len(resp) == 0 || server.MsgType(resp[0]) != server.TypeLoginResponse {
			t.Fatalf("guess %d: %x, %v", i, resp, err)
		}
	}
	_, _, err = runCLI(t, acct("--home", home("thief"), "login", alice)...)
	if err == nil || !strings.Contains(err.Error(), "rate limited") || !strings.Contains(err.Error(), "wait") {
		t.Fatalf("login past the limit: %v, want a rate-limited error that says to wait", err)
	}

	// status shows the delegation: none, then the server alice
	// delegates to, until when, and what it says it holds.
	out, _, err := runCLI(t, "--home", home("alice"), "status", "--testnet", net.Dir())
	if err != nil || !strings.Contains(out, "address:    "+alice) || !strings.Contains(out, "delegation: none") {
		t.Fatalf("status before delegating: %v\n%s", err, out)
	}
	if _, stderr, err := runCLI(t, "--home", home("alice"), "delegate", "--server", srv, "--days", "7", "--testnet", net.Dir(), srvID); err != nil {
		t.Fatalf("delegate: %v\n%s", err, stderr)
	}
	out, _, err = runCLI(t, "--home", home("alice"), "status", "--testnet", net.Dir())
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	for _, want := range []string{"delegation: to " + srvID + " at " + srv + " until ", "server:     collecting: collecting until ", "until:      ", "(in 6 days)", "held:       ", " mails, ", " of a 1.0 GiB quota"} {
		if !strings.Contains(out, want) {
			t.Errorf("status after delegating lacks %q:\n%s", want, out)
		}
	}
}

// maildirHolds reports whether a message in dir/new or dir/cur holds text.
func maildirHolds(t *testing.T, dir, text string) bool {
	t.Helper()
	for _, sub := range []string{"new", "cur"} {
		entries, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, sub, e.Name()))
			if err == nil && strings.Contains(string(b), text) {
				return true
			}
		}
	}
	return false
}
