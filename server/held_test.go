package server

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/clock"
	"github.com/flowmail/flowmail/internal/testseed"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
	"github.com/flowmail/flowmail/node"
	"github.com/flowmail/flowmail/record"
	"github.com/flowmail/flowmail/transport"
)

// heldNet is a small network on loopback QUIC sharing one moved clock:
// two plain nodes, the server, and a client node for each user.
type heldNet struct {
	clk    *clock.Offset
	server *Server
	nodes  []*node.Node
	codec  *mail.Codec
}

func nodeConfig(t *testing.T, clk clock.Clock, client bool, boot ...transport.Contact) node.Config {
	c := node.Config{
		Network: testNetwork, Listen: "127.0.0.1:0", Reachability: node.ReachPublic, NoIPLimits: true, Clock: clk,
		DialTimeout: time.Minute, RequestTimeout: time.Minute, HandshakeTimeout: time.Minute,
		Bootstrap: boot, Client: client, NoOnionRelay: true,
	}
	if !client {
		c.DataDir = t.TempDir()
	}
	return c
}

func startHeldNet(t *testing.T, quota int64) *heldNet {
	t.Helper()
	ctx := hangGuard(t)
	n := &heldNet{clk: &clock.Offset{}}
	var boot []transport.Contact
	for range 2 {
		nd, err := node.Start(ctx, nodeConfig(t, n.clk, false, boot...))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nd.Close() })
		n.nodes = append(n.nodes, nd)
		boot = append(boot, nd.Contact())
	}
	s, err := Start(ctx, Config{Node: nodeConfig(t, n.clk, false, boot...), AccountListen: "127.0.0.1:0", HeldQuota: quota, CollectInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	n.server = s
	c, err := mail.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	n.codec = c
	return n
}

func hangGuard(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// user is an identity with a client node on the network and a client
// of the server's held-mail service.
type user struct {
	id     *identity.Identity
	node   *node.Node
	client *Client
	dir    string
}

func (n *heldNet) user(t *testing.T) *user {
	t.Helper()
	ctx := hangGuard(t)
	id, err := identity.Generate(0, n.clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	boot := []transport.Contact{n.nodes[0].Contact(), n.server.Node().Contact()}
	nd, err := node.Start(ctx, nodeConfig(t, n.clk, true, boot...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nd.Close() })
	if err := nd.Put(ctx, id.Public().Block, block.MaxLifetime); err != nil {
		t.Fatal(err)
	}
	key, err := identity.Generate(0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tr, err := transport.ListenQUIC(ctx, transport.QUICConfig{
		Identity: key, Network: testNetwork, ListenAddr: "127.0.0.1:0", Client: true,
		DialTimeout: time.Minute, HandshakeTimeout: time.Minute, RequestTimeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return &user{id: id, node: nd, client: &Client{Transport: tr, Server: n.server.AccountContact()}, dir: t.TempDir()}
}

// shortDialClient is a client whose dials give up after seconds, for a
// server that is known to be down.
func shortDialClient(t *testing.T, server transport.Contact) *Client {
	t.Helper()
	key, err := identity.Generate(0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tr, err := transport.ListenQUIC(t.Context(), transport.QUICConfig{
		Identity: key, Network: testNetwork, ListenAddr: "127.0.0.1:0", Client: true,
		DialTimeout: 2 * time.Second, HandshakeTimeout: 2 * time.Second, RequestTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return &Client{Transport: tr, Server: server}
}

// delegate signs and stores u's delegation to the server, version seq
// (prev is the version it replaces), for d from now.
func (n *heldNet) delegate(t *testing.T, u *user, seq uint32, prev *record.Record, d time.Duration, revoked bool) *record.Record {
	t.Helper()
	now := uint64(n.clk.Now().Unix())
	v := record.Version{Seq: seq, NotBefore: now, NotAfter: now + uint64(d/time.Second), Revoked: revoked}
	if prev != nil {
		v.Prev = block.Sum(prev.Bytes())
		v.NotBefore, v.NotAfter = prev.Delegation.Version.NotBefore, prev.Delegation.Version.NotAfter
	}
	rec, err := record.SignDelegation(record.Delegation{Owner: u.id.ID(), Version: v, Delegates: []block.ID{n.server.Node().ID()}}, u.id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.node.DHT().PutRecord(hangGuard(t), rec.Bytes(), block.MaxLifetime); err != nil {
		t.Fatal(err)
	}
	return rec
}

// send stores a mail from u to to, with a locator, and returns its body
// text.
func (n *heldNet) send(t *testing.T, from, to *user, body string) {
	t.Helper()
	m := &mail.Message{From: mail.Mailbox{Address: from.id.ID()}, To: []mail.Mailbox{{Address: to.id.ID()}}, Subject: "held", Text: body, Date: n.clk.Now()}
	msg, err := mail.Compose(m, crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, err = delivery.Send(hangGuard(t), from.node, n.codec, mail.BuildInput{
		Sender: from.id, Recipients: []*identity.PublicKey{to.id.Public()}, Message: bytes.NewReader(msg), Size: int64(len(msg)),
		Now: n.clk.Now(), Locator: true,
	}, delivery.SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// fetch runs FetchHeld for u into its Maildir.
func (n *heldNet) fetch(t *testing.T, u *user) *HeldFetch {
	t.Helper()
	st, err := mailbox.OpenState(u.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got, err := FetchHeld(hangGuard(t), u.client, n.server.Node().ID(), u.node, n.codec, u.id, st, delivery.FetchOptions{Maildir: filepath.Join(u.dir, "Maildir"), Now: n.clk.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func delivered(t *testing.T, u *user) string {
	t.Helper()
	var all []byte
	entries, _ := os.ReadDir(filepath.Join(u.dir, "Maildir", "new"))
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(u.dir, "Maildir", "new", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return string(all)
}

// storeHolds reports whether any file under dir contains b.
func storeHolds(t *testing.T, dir string, b []byte) (found bool, files int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		found = found || bytes.Contains(data, b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found, files
}

// TestHeldMailOutlivesTheDHT: alice delegates to her server and goes
// offline; bob sends; the server collects; the DHT's copies expire;
// alice gets the mail from her server in one connection, and confirms,
// after which the server holds nothing. The server's disk never holds
// the body. With the server down, her fetch goes to the DHT.
func TestHeldMailOutlivesTheDHT(t *testing.T) {
	seed := testseed.Seed(t)
	n := startHeldNet(t, 0)
	ctx := hangGuard(t)
	alice, bob := n.user(t), n.user(t)
	n.delegate(t, alice, 1, nil, record.MaxDelegation, false)
	st, err := alice.client.Hold(ctx, alice.id.ID())
	if err != nil || st.State != HoldCollecting {
		t.Fatalf("HOLD: %v, %v (%s)", err, st.State, st.Text)
	}

	body := "held for alice while she was away, seed " + strings.Repeat("x", int(seed%7)) + " end"
	n.send(t, bob, alice, body)
	n.server.Holder().Collect(ctx)
	if st := n.server.Holder().Status(alice.id.ID()); st.Mails != 1 || st.Bytes == 0 {
		t.Fatalf("after collecting: %d mails, %d bytes (%v: %s)", st.Mails, st.Bytes, st.State, st.Text)
	}

	// A month and a day later, the DHT's copies are gone.
	n.clk.Advance(block.MaxLifetime + time.Hour)
	ids, err := alice.node.List(ctx, alice.id.ID(), 0, time.Time{})
	if len(ids) != 0 {
		t.Fatalf("the DHT still lists %d index blocks after their expiry (%v)", len(ids), err)
	}

	// Alice comes back and publishes her pubkey block again, as her
	// client does, so the server can check her confirmation.
	if err := alice.node.Put(ctx, alice.id.Public().Block, block.MaxLifetime); err != nil {
		t.Fatal(err)
	}
	got := n.fetch(t, alice)
	if !got.FromServer || len(got.Delivered) != 1 {
		t.Fatalf("fetch: from server %v (%v), %d delivered, %d deferred %v, %d rejected %v", got.FromServer, got.ServerErr, len(got.Delivered), len(got.Deferred), got.Deferred, len(got.Rejected), got.Rejected)
	}
	if !strings.Contains(delivered(t, alice), body) {
		t.Fatal("the delivered mail does not hold the body")
	}
	if found, files := storeHolds(t, n.server.DataDir(), []byte(body)); found || files < 3 {
		t.Fatalf("server's disk: body found %v in %d files", found, files)
	}
	if got.Confirmed != 1 || got.ConfirmErr != nil {
		t.Fatalf("confirmed %d (%v), want 1", got.Confirmed, got.ConfirmErr)
	}
	if st := n.server.Holder().Status(alice.id.ID()); st.Mails != 0 || st.Bytes != 0 {
		t.Fatalf("after the confirmation the server holds %d mails, %d bytes", st.Mails, st.Bytes)
	}
	mails, _ := os.ReadDir(filepath.Join(n.server.DataDir(), HeldDir, alice.id.ID().String()))
	for _, m := range mails {
		if m.IsDir() {
			t.Fatalf("mail directory %s left after the confirmation", m.Name())
		}
	}

	// The server's service goes down (its node stays, so the DHT's
	// lookups do not wait on a dead peer): the next mail comes from the
	// DHT. Nothing listens at the service's port any more, so the short
	// dial timeout decides nothing but how soon the dial fails.
	body2 := "sent while the server was down"
	service := n.server.AccountContact()
	if err := n.server.quic.Close(); err != nil {
		t.Fatal(err)
	}
	alice.client = shortDialClient(t, service)
	n.send(t, bob, alice, body2)
	got = n.fetch(t, alice)
	if got.FromServer || got.ServerErr == nil || len(got.Delivered) != 1 || !strings.Contains(delivered(t, alice), body2) {
		t.Fatalf("server down: from server %v (%v), %d delivered", got.FromServer, got.ServerErr, len(got.Delivered))
	}
}

// TestHeldCollectionStopsWhenTheDelegationEnds: an expired delegation,
// then a revoked one, stop collection, and HOLD_STATUS says why.
func TestHeldCollectionStopsWhenTheDelegationEnds(t *testing.T) {
	n := startHeldNet(t, 0)
	ctx := hangGuard(t)
	alice, bob := n.user(t), n.user(t)
	h := n.server.Holder()

	// Not delegated: HOLD says so and nothing is kept.
	if st, err := alice.client.Hold(ctx, alice.id.ID()); err != nil || st.State != HoldNoDelegation {
		t.Fatalf("HOLD without a delegation: %v, %v", err, st.State)
	}
	if _, err := alice.client.HeldList(ctx, alice.id.ID(), 10); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("HELD_LIST without a delegation: %v, want ErrNotHeld", err)
	}

	v1 := n.delegate(t, alice, 1, nil, 2*time.Hour, false)
	if st, err := alice.client.Hold(ctx, alice.id.ID()); err != nil || st.State != HoldCollecting {
		t.Fatalf("HOLD: %v, %v", err, st.State)
	}
	n.clk.Advance(3 * time.Hour)
	n.send(t, bob, alice, "after the delegation expired")
	h.Collect(ctx)
	st := h.Status(alice.id.ID())
	if st.State != HoldExpired || st.Mails != 0 || !strings.Contains(st.Text, "expired") {
		t.Fatalf("expired delegation: %v, %d mails, %q", st.State, st.Mails, st.Text)
	}

	// A new delegation, then its revocation.
	v2 := n.delegate(t, alice, 2, v1, 0, false)
	_ = v2
	// v2 keeps v1's dates, which have passed: sign a fresh one instead.
	now := uint64(n.clk.Now().Unix())
	fresh, err := record.SignDelegation(record.Delegation{Owner: alice.id.ID(), Version: record.Version{Seq: 3, Prev: block.Sum(v2.Bytes()), NotBefore: now, NotAfter: now + 3600*24}, Delegates: []block.ID{n.server.Node().ID()}}, alice.id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.node.DHT().PutRecord(ctx, fresh.Bytes(), block.MaxLifetime); err != nil {
		t.Fatal(err)
	}
	h.Collect(ctx)
	if st := h.Status(alice.id.ID()); st.State != HoldCollecting || st.Mails != 1 {
		t.Fatalf("renewed delegation: %v, %d mails (%s)", st.State, st.Mails, st.Text)
	}
	n.delegate(t, alice, 4, fresh, 0, true)
	n.send(t, bob, alice, "after the revocation")
	h.Collect(ctx)
	st = h.Status(alice.id.ID())
	if st.State != HoldRevoked || st.Mails != 1 || !strings.Contains(st.Text, "revoked") {
		t.Fatalf("revoked delegation: %v, %d mails, %q", st.State, st.Mails, st.Text)
	}
	if st2, err := alice.client.Hold(ctx, alice.id.ID()); err != nil || st2.State != HoldRevoked {
		t.Fatalf("HOLD after the revocation: %v, %v", err, st2.State)
	}
}

// TestHeldQuotaStopsCollection: at the quota the server takes no new
// mail, says so, and the mail stays fetchable from the DHT; a
// confirmation makes room and collection resumes.
func TestHeldQuotaStopsCollection(t *testing.T) {
	n := startHeldNet(t, 0)
	ctx := hangGuard(t)
	alice, bob := n.user(t), n.user(t)
	h := n.server.Holder()
	n.delegate(t, alice, 1, nil, record.MaxDelegation, false)
	if _, err := alice.client.Hold(ctx, alice.id.ID()); err != nil {
		t.Fatal(err)
	}
	n.send(t, bob, alice, "first")
	h.Collect(ctx)
	one := h.Status(alice.id.ID()).Bytes
	if one == 0 {
		t.Fatal("nothing collected")
	}
	h.cfg.Quota = int64(one) + int64(one)/2 // room for one mail of this size, not two

	n.send(t, bob, alice, "second")
	h.Collect(ctx)
	st := h.Status(alice.id.ID())
	if st.State != HoldQuotaFull || st.Mails != 1 || st.Bytes > uint64(h.cfg.Quota) || !strings.Contains(st.Text, "quota") {
		t.Fatalf("at the quota: %v, %d mails, %d bytes of %d, %q", st.State, st.Mails, st.Bytes, h.cfg.Quota, st.Text)
	}
	// The server lists only what it holds: alice gets the first mail
	// from it and confirms it; the second, which waits in the DHT, the
	// same fetch gets there (21.6).
	got := n.fetch(t, alice)
	if len(got.Delivered) != 2 || got.Confirmed != 1 || !strings.Contains(delivered(t, alice), "second") {
		t.Fatalf("fetch at the quota: %d delivered, %d confirmed (%v)", len(got.Delivered), got.Confirmed, got.ConfirmErr)
	}
	h.Collect(ctx) // room again (the second mail was delivered and deleted from the DHT meanwhile)
	if st := h.Status(alice.id.ID()); st.State != HoldCollecting || st.Mails > 1 {
		t.Fatalf("after the confirmation: %v, %d mails (%s)", st.State, st.Mails, st.Text)
	}
}

// TestConfirmNeedsTheOwnersKey: a confirmation signed by another key,
// or for another server, drops nothing.
func TestConfirmNeedsTheOwnersKey(t *testing.T) {
	n := startHeldNet(t, 0)
	ctx := hangGuard(t)
	alice, bob := n.user(t), n.user(t)
	h := n.server.Holder()
	n.delegate(t, alice, 1, nil, record.MaxDelegation, false)
	if _, err := alice.client.Hold(ctx, alice.id.ID()); err != nil {
		t.Fatal(err)
	}
	n.send(t, bob, alice, "keep me")
	h.Collect(ctx)
	ids, err := alice.client.HeldList(ctx, alice.id.ID(), 10)
	if err != nil || len(ids) != 1 {
		t.Fatalf("HELD_LIST: %v, %d IDs", err, len(ids))
	}
	for name, c := range map[string]func() HeldConfirm{
		"bob's key": func() HeldConfirm {
			m := HeldConfirm{Owner: alice.id.ID(), Time: uint64(n.clk.Now().Unix()), IDs: ids}
			m.Signature = bob.id.Sign(LabelConfirm, ConfirmSigned(n.server.Node().ID(), m))
			return m
		},
		"another server": func() HeldConfirm {
			m := HeldConfirm{Owner: alice.id.ID(), Time: uint64(n.clk.Now().Unix()), IDs: ids}
			m.Signature = alice.id.Sign(LabelConfirm, ConfirmSigned(bob.id.ID(), m))
			return m
		},
		"two hours old": func() HeldConfirm {
			m := HeldConfirm{Owner: alice.id.ID(), Time: uint64(n.clk.Now().Add(-2 * time.Hour).Unix()), IDs: ids}
			m.Signature = alice.id.Sign(LabelConfirm, ConfirmSigned(n.server.Node().ID(), m))
			return m
		},
	} {
		if _, err := alice.client.call(ctx, c()); !errors.Is(err, ErrForbidden) {
			t.Errorf("%s: %v, want ErrForbidden", name, err)
		}
	}
	if st := h.Status(alice.id.ID()); st.Mails != 1 {
		t.Fatalf("refused confirmations dropped mail: %d held", st.Mails)
	}
	if err := alice.client.HeldConfirm(ctx, alice.id, n.server.Node().ID(), ids, n.clk.Now()); err != nil {
		t.Fatal(err)
	}
	if st := h.Status(alice.id.ID()); st.Mails != 0 {
		t.Fatalf("alice's confirmation left %d mails", st.Mails)
	}
}

// TestFetchAsksTheServerAndTheDHT: with the server up, a mail it does
// not hold (sent after its last round) arrives from the DHT in the same
// fetch, and the one it holds arrives once, though the DHT still lists
// it too (Keep: the blocks stay there).
func TestFetchAsksTheServerAndTheDHT(t *testing.T) {
	n := startHeldNet(t, 0)
	ctx := hangGuard(t)
	alice, bob := n.user(t), n.user(t)
	n.delegate(t, alice, 1, nil, record.MaxDelegation, false)
	if st, err := alice.client.Hold(ctx, alice.id.ID()); err != nil || st.State != HoldCollecting {
		t.Fatalf("HOLD: %v, %v (%s)", err, st.State, st.Text)
	}
	n.send(t, bob, alice, "the first mail, collected by the server")
	n.server.Holder().Collect(ctx)
	if st := n.server.Holder().Status(alice.id.ID()); st.Mails != 1 {
		t.Fatalf("after collecting: %d mails held (%v: %s)", st.Mails, st.State, st.Text)
	}
	n.send(t, bob, alice, "the second mail, sent after the server's round")

	st, err := mailbox.OpenState(alice.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got, err := FetchHeld(ctx, alice.client, n.server.Node().ID(), alice.node, n.codec, alice.id, st,
		delivery.FetchOptions{Maildir: filepath.Join(alice.dir, "Maildir"), Now: n.clk.Now(), Keep: true})
	if err != nil {
		t.Fatal(err)
	}
	if !got.FromServer || got.NetworkErr != nil || got.Confirmed != 1 {
		t.Fatalf("from the server %v (%v), network error %v, confirmed %d; want the server's fetch, the network's, one confirmed",
			got.FromServer, got.ServerErr, got.NetworkErr, got.Confirmed)
	}
	box := delivered(t, alice)
	for _, body := range []string{"the first mail, collected by the server", "the second mail, sent after the server's round"} {
		if c := strings.Count(box, body); c != 1 {
			t.Errorf("%q delivered %d times, want once", body, c)
		}
	}
	if len(got.Delivered) != 2 || got.Skipped == 0 {
		t.Fatalf("%d delivered, %d skipped; want 2 delivered and the server's mail skipped in the DHT", len(got.Delivered), got.Skipped)
	}
}
