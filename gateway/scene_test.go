package gateway

import (
	"bytes"
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"go.uber.org/goleak"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/internal/nsdtest"
	"github.com/flowmail/flowmail/kademlia"
	"github.com/flowmail/flowmail/naming"
	"github.com/flowmail/flowmail/node"
	"github.com/flowmail/flowmail/record"
	"github.com/flowmail/flowmail/testnet"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hangGuard bounds whole tests: a hang, never a speed requirement.
const hangGuard = 8 * time.Minute

const domain = "example.test"

// scene is a small loopback testnet, nsd serving the domains' records,
// a gateway for example.test, and alice, who holds alice@example.test.
type scene struct {
	ctx      context.Context
	net      *testnet.Net
	client   *node.Node
	alice    *testnet.User
	aliceCrt *record.Record
	gw       *Gateway
	gwUser   *testnet.User
	dns      *net.Resolver
	nsd      *nsdtest.Server
	legacy   *rsa.PrivateKey // legacy.test's DKIM key (exim signs with it)
	inbound  chan InboundReport
	relayed  chan RelayReport
	passes   chan error
	mta      *exim // nil unless asked for
	sink     *sink
}

// nameDHT adapts the node's DHT to naming.DHT.
type nameDHT struct{ d *kademlia.DHT }

func (a nameDHT) Record(ctx context.Context, slot block.ID) (*record.Record, error) {
	r, _, err := a.d.GetRecord(ctx, slot)
	return r, err
}

func (a nameDHT) KeyState(ctx context.Context, addr block.ID) (record.KeyState, error) {
	return a.d.KeyState(ctx, addr)
}

// dkimRecord is a DKIM key record's text, split in strings of at most
// 200 bytes for the zone file.
func dkimRecord(name, k, pub string) string {
	txt := "v=DKIM1; k=" + k + "; p=" + pub
	var parts []string
	for len(txt) > 0 {
		n := min(len(txt), 200)
		parts = append(parts, `"`+txt[:n]+`"`)
		txt = txt[n:]
	}
	return name + " IN TXT " + strings.Join(parts, " ") + "\n"
}

// newScene starts it all; withMTA starts exim and the legacy sink too
// (skipping the test when exim cannot run).
func newScene(t *testing.T, withMTA bool, opt func(*Config)) *scene {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	t.Cleanup(cancel)
	tune := func(c *node.Config) {
		c.K = 4
		c.DialTimeout = 20 * time.Second
		c.RequestTimeout = 2 * time.Minute
	}
	n, err := testnet.Start(ctx, testnet.Config{Nodes: 4, Dir: t.TempDir(), Tune: func(_ int, c *node.Config) { tune(c) }, TuneClient: tune})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	s := &scene{ctx: ctx, net: n, inbound: make(chan InboundReport, 16), relayed: make(chan RelayReport, 16), passes: make(chan error, 16)}
	if s.client, err = n.Client(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.client.Close() })

	// Identities, published; the domain key certifies both names.
	_, dk, _ := ed25519.GenerateKey(crand.Reader)
	s.alice = newUser(t, ctx, s.client, "alice")
	s.gwUser = newUser(t, ctx, s.client, "gateway")
	v := record.Version{Seq: 1, NotBefore: uint64(time.Now().Add(-time.Hour).Unix()), NotAfter: uint64(time.Now().Add(24 * time.Hour).Unix())}
	s.aliceCrt, err = record.SignName(record.NameCert{Name: "alice@" + domain, Address: s.alice.ID(), Version: v}, record.KeySigner(dk), s.alice.Identity)
	if err != nil {
		t.Fatal(err)
	}
	gwCrt, err := record.SignName(record.NameCert{Name: LocalPart + "@" + domain, Address: s.gwUser.ID(), Version: v}, record.KeySigner(dk), s.gwUser.Identity)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*record.Record{s.aliceCrt, gwCrt} {
		if _, err := s.client.DHT().PutRecord(ctx, c.Bytes(), time.Hour); err != nil {
			t.Fatal(err)
		}
	}

	// DNS: the domain's flowmail record and the gateway's DKIM key;
	// legacy.test's SPF, DKIM, DMARC (reject) and MX; soft.test's
	// DMARC (none); refuse.test's MX.
	// RSA, which every MTA verifies (exim here cannot verify Ed25519);
	// 1024 bits, the least RFC 8301 allows, to keep the tests quick.
	if s.legacy, err = rsa.GenerateKey(crand.Reader, 1024); err != nil {
		t.Fatal(err)
	}
	legacyPub, _ := x509.MarshalPKIXPublicKey(&s.legacy.PublicKey)
	gwKey, err := rsa.GenerateKey(crand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	gwPub, _ := x509.MarshalPKIXPublicKey(&gwKey.PublicKey)
	rec := naming.Record{Keys: []naming.Key{naming.Key(dk.Public().(ed25519.PublicKey))}}
	zone := rec.ZoneLine(domain) + "\n" +
		dkimRecord("gw._domainkey.example.test.", "rsa", base64.StdEncoding.EncodeToString(gwPub)) +
		"example.test. IN TXT \"v=spf1 ip4:127.0.0.1 -all\"\n" +
		"legacy.test. IN TXT \"v=spf1 ip4:127.0.0.1 -all\"\n" +
		"_dmarc.legacy.test. IN TXT \"v=DMARC1; p=reject\"\n" +
		dkimRecord("sel._domainkey.legacy.test.", "rsa", base64.StdEncoding.EncodeToString(legacyPub)) +
		"legacy.test. IN MX 10 mx.legacy.test.\n" +
		"mx.legacy.test. IN A 127.0.0.1\n" +
		"refuse.test. IN MX 10 mx.legacy.test.\n" +
		"_dmarc.soft.test. IN TXT \"v=DMARC1; p=none\"\n"
	s.nsd = nsdtest.Start(t, ctx, "test", zone)
	s.dns = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, s.nsd.Addr)
	}}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mxPort := 0
	if withMTA {
		s.sink = startSink(t)
		s.mta = startExim(t, ctx, eximRoutes{Gateway: ln.Addr().String(), Sink: s.sink.ln.Addr().String(), DKIMKey: s.legacy})
		_, p, _ := net.SplitHostPort(s.mta.Addr)
		fmt.Sscan(p, &mxPort)
	}
	gwNode, err := n.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gwNode.Close() })
	cfg := Config{
		Domain: domain, Identity: s.gwUser.Identity, Certificate: gwCrt.Bytes(),
		Network: gwNode, KeyLogs: gwNode.DHT(),
		Names: &naming.Resolver{DNS: &naming.DNS{Servers: []string{s.nsd.Addr}}, DHT: nameDHT{gwNode.DHT()}},
		DNS:   s.dns, Listener: ln, Hostname: "gw.example.test", MXPort: mxPort,
		DKIMSelector: "gw", DKIMKey: gwKey,
		Spool:         filepath.Join(t.TempDir(), "spool"),
		FetchInterval: time.Hour, // fetches come from FetchNow
		RetryAfter:    time.Hour,
		OnInbound:     func(r InboundReport) { s.inbound <- r },
		OnRelay:       func(r RelayReport) { s.relayed <- r },
		OnPass:        func(_ *delivery.FetchReport, err error) { s.passes <- err },
		Log:           slog.New(slog.NewTextHandler(&logWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if opt != nil {
		opt(&cfg)
	}
	if s.gw, err = Start(ctx, cfg); err != nil {
		ln.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.gw.Close() })
	s.waitPass(t) // the pass every gateway makes when it starts
	return s
}

func newUser(t *testing.T, ctx context.Context, c *node.Node, name string) *testnet.User {
	t.Helper()
	u, err := testnet.NewUser(filepath.Join(t.TempDir(), name), 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, u.Public().Block, block.MaxLifetime); err != nil {
		t.Fatal(err)
	}
	return u
}

// waitPass waits for the end of the outbound loop's next pass.
func (s *scene) waitPass(t *testing.T) {
	t.Helper()
	select {
	case err := <-s.passes:
		if err != nil {
			t.Logf("outbound pass: %v", err)
		}
	case <-s.ctx.Done():
		t.Fatal("no outbound pass before the hang guard")
	}
}

// relayPass kicks a pass and returns its relay reports.
func (s *scene) relayPass(t *testing.T) []RelayReport {
	t.Helper()
	s.gw.FetchNow()
	s.waitPass(t)
	var out []RelayReport
	for {
		select {
		case r := <-s.relayed:
			out = append(out, r)
		default:
			return out
		}
	}
}

func (s *scene) waitInbound(t *testing.T) InboundReport {
	t.Helper()
	select {
	case r := <-s.inbound:
		return r
	case <-s.ctx.Done():
		t.Fatal("no inbound report before the hang guard")
	}
	return InboundReport{}
}

// fetch fetches alice's mail and returns the messages delivered.
func (s *scene) fetch(t *testing.T) []string {
	t.Helper()
	rep, err := testnet.FetchMail(s.ctx, s.client, s.alice, delivery.FetchOptions{KeyLogs: s.client.DHT()})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range rep.Delivered {
		b, err := os.ReadFile(d.Path)
		if err != nil {
			t.Fatal(err)
		}
		if d.From != s.gwUser.ID() {
			t.Errorf("mail signed by %s, want the gateway", d.From.Short())
		}
		out = append(out, string(b))
	}
	return out
}

// sink is the legacy side's final MTA: a go-smtp server that keeps what
// it is given, refuses RCPT for nobody@, and defers (451) RCPT for
// later@ while deferLater is set.
type sink struct {
	srv        *smtp.Server
	ln         net.Listener
	got        chan []byte
	mu         sync.Mutex
	done       chan struct{}
	deferLater atomic.Bool
}

func startSink(t *testing.T) *sink {
	t.Helper()
	k := &sink{got: make(chan []byte, 16), done: make(chan struct{})}
	k.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &sinkSession{k: k}, nil }))
	k.srv.Domain = "sink.legacy.test"
	var err error
	if k.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	go func() { defer close(k.done); k.srv.Serve(k.ln) }()
	t.Cleanup(func() { k.srv.Close(); <-k.done })
	return k
}

type sinkSession struct{ k *sink }

func (s *sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if strings.HasPrefix(to, "nobody@") {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	if strings.HasPrefix(to, "later@") && s.k.deferLater.Load() {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "mailbox busy, try later"}
	}
	return nil
}
func (s *sinkSession) Data(r io.Reader) error {
	var b bytes.Buffer
	if _, err := io.Copy(&b, io.LimitReader(r, 1<<20)); err != nil {
		return err
	}
	s.k.got <- b.Bytes()
	return nil
}
func (s *sinkSession) Reset()        {}
func (s *sinkSession) Logout() error { return nil }

// smtpTransaction runs one SMTP transaction with addr, returning the
// first error (an *smtp.SMTPError for refusals).
func smtpTransaction(t *testing.T, addr, helo, from string, to []string, msg []byte) error {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	return transact(c, helo, from, to, msg)
}

// smtpTLSTransaction is smtpTransaction after STARTTLS.
func smtpTLSTransaction(t *testing.T, addr, helo, from string, to []string, msg []byte) error {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := smtp.NewClientStartTLS(conn, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return err
	}
	if _, ok := c.TLSConnectionState(); !ok {
		t.Fatal("no TLS after STARTTLS")
	}
	return transact(c, helo, from, to, msg)
}

func transact(c *smtp.Client, helo, from string, to []string, msg []byte) error {
	defer c.Close()
	if err := c.Hello(helo); err != nil {
		return err
	}
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// selfSigned is a TLS server config with a fresh self-signed
// certificate for host.
func selfSigned(t *testing.T, host string) *tls.Config {
	t.Helper()
	_, k, _ := ed25519.GenerateKey(crand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: k}}}
}

func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

func legacyMessage(from, to, subject, body string) []byte {
	return crlf(fmt.Sprintf("From: %s\nTo: %s\nSubject: %s\nDate: Wed, 02 Dec 2026 05:00:00 +0000\nMessage-ID: <%s@legacy.test>\n\n%s\n", from, to, subject, strings.ReplaceAll(subject, " ", "."), body))
}
