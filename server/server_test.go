package server

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowmail/flowmail/account"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/clock"
	"github.com/flowmail/flowmail/node"
	"github.com/flowmail/flowmail/transport"
)

const testNetwork = "server-test"

// startServer starts a real server on loopback sockets.
func startServer(t *testing.T, clk clock.Clock) *Server {
	t.Helper()
	s, err := Start(t.Context(), Config{
		Node: node.Config{
			DataDir: t.TempDir(), Network: testNetwork, Listen: "127.0.0.1:0",
			Reachability: node.ReachPublic, NoIPLimits: true, Clock: clk,
			DialTimeout: time.Minute, RequestTimeout: time.Minute, HandshakeTimeout: time.Minute,
		},
		AccountListen: "127.0.0.1:0",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// device is a fresh device: its own transport, and an identity with its
// key file's bytes.
type device struct {
	id      *identity.Identity
	keyFile []byte
	client  *Client
}

func newDevice(t *testing.T, s *Server) *device {
	t.Helper()
	id, err := identity.Generate(0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "identity.key")
	if err := identity.WriteKeyFile(path, id, identity.KeyFileOptions{NoPassphrase: true}); err != nil {
		t.Fatal(err)
	}
	kf, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	nodeKey, err := identity.Generate(0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tr, err := transport.ListenQUIC(t.Context(), transport.QUICConfig{
		Identity: nodeKey, Network: testNetwork, ListenAddr: "127.0.0.1:0", Client: true,
		DialTimeout: time.Minute, HandshakeTimeout: time.Minute, RequestTimeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return &device{id: id, keyFile: kf, client: &Client{Transport: tr, Server: s.AccountContact()}}
}

// TestPasswordLoginFromAFreshDevice registers on one device, logs in
// from another with only the password, changes the password, and checks
// what the server's disk holds.
func TestPasswordLoginFromAFreshDevice(t *testing.T) {
	ctx := t.Context()
	s := startServer(t, nil)
	a := newDevice(t, s)
	pw := []byte("tr0ub4dor&3 but longer")
	if _, err := a.client.Register(ctx, a.id, pw, a.keyFile, account.KSFParams{}); err != nil {
		t.Fatal(err)
	}

	b := newDevice(t, s) // only the password and the address
	got, err := b.client.Login(ctx, a.id.Address(), pw)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, a.keyFile) {
		t.Fatal("the identity downloaded is not the one registered")
	}
	if _, err := b.client.Login(ctx, a.id.Address(), []byte("tr0ub4dor&4 but longer")); !errors.Is(err, account.ErrAuthFailed) {
		t.Fatalf("wrong password: %v, want account.ErrAuthFailed", err)
	}

	// A password change re-seals the same identity.
	pw2 := []byte("a new passphrase entirely")
	if _, err := a.client.Register(ctx, a.id, pw2, a.keyFile, account.KSFParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.Login(ctx, a.id.Address(), pw); !errors.Is(err, account.ErrAuthFailed) {
		t.Fatalf("old password after the change: %v, want account.ErrAuthFailed", err)
	}
	if got, err := b.client.Login(ctx, a.id.Address(), pw2); err != nil || !bytes.Equal(got, a.keyFile) {
		t.Fatalf("new password: %v (same identity: %v)", err, bytes.Equal(got, a.keyFile))
	}

	// Nothing the server keeps (its node store, keys, account files)
	// holds either password, the key file or the identity's secret keys.
	secrets := map[string][]byte{
		"password": pw, "new password": pw2, "key file": a.keyFile,
		"signing seed": a.id.SigningKey().Seed(),
	}
	root := s.dataDir
	if err := s.Close(); err != nil { // every byte of the store on disk
		t.Fatal(err)
	}
	files := 0
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		for name, sec := range secrets {
			if bytes.Contains(data, sec) {
				t.Errorf("%s holds the %s", p, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := os.ReadDir(s.accounts.store.dir); len(n) != 1 || files < 3 {
		t.Fatalf("read %d files, %d account files: the walk missed the server's data", files, len(n))
	}
}

// TestRegistrationNeedsTheIdentitysKey: someone without alice's identity
// key cannot register (or re-register, to change the password of)
// alice's account.
func TestRegistrationNeedsTheIdentitysKey(t *testing.T) {
	ctx := t.Context()
	s := startServer(t, nil)
	alice, mallory := newDevice(t, s), newDevice(t, s)
	pake := account.NewOPAQUE()

	for _, tc := range []struct {
		name   string
		signer *identity.Identity
		pubkey []byte
	}{
		{"signed by another key", mallory.id, alice.id.Public().Block},
		{"another identity's pubkey", mallory.id, mallory.id.Public().Block},
	} {
		reg, req, err := pake.StartRegistration(alice.id.Address(), []byte("a stretched secret"))
		if err != nil {
			t.Fatal(err)
		}
		init := RegisterInit{Account: alice.id.Address()}
		copy(init.Request[:], req)
		a, err := mallory.client.call(ctx, init)
		if err != nil {
			t.Fatal(err)
		}
		resp := a.(RegisterResponse)
		rec, export, err := reg.Finish(resp.Response[:])
		if err != nil {
			t.Fatal(err)
		}
		sealed, _ := account.Seal(export, alice.id.Address(), []byte("not alice's key"))
		fin := RegisterFinish{Session: resp.Session, KSF: account.DefaultKSF, Pubkey: tc.pubkey, Sealed: sealed}
		copy(fin.Record[:], rec)
		fin.Signature = tc.signer.Sign(LabelRegister, RegisterSigned(resp.Session, alice.id.Address(), fin.KSF, rec, sealed))
		if _, err := mallory.client.call(ctx, fin); !errors.Is(err, ErrForbidden) {
			t.Fatalf("%s: %v, want ErrForbidden", tc.name, err)
		}
	}
	if entries, _ := os.ReadDir(s.accounts.store.dir); len(entries) != 0 {
		t.Fatalf("%d accounts stored after refused registrations", len(entries))
	}
}

// TestClientRefusesAnotherServer: a client that pins the server's node
// ID refuses whoever else answers at that address.
func TestClientRefusesAnotherServer(t *testing.T) {
	s := startServer(t, nil)
	d := newDevice(t, s)
	d.client.Server.ID[0] ^= 1
	if _, err := d.client.Login(t.Context(), d.id.Address(), []byte("pw")); !errors.Is(err, transport.ErrWrongPeer) {
		t.Fatalf("login at a server with another ID: %v, want transport.ErrWrongPeer", err)
	}
}
