package main

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/flowmail/flowmail/gateway"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/naming"
	"github.com/flowmail/flowmail/node"
	"github.com/flowmail/flowmail/record"
)

// gatewayFlags turn on a server's SMTP gateway (docs/PROTOCOL.md 20).
func gatewayFlags() []cli.Flag {
	return []cli.Flag{
		altsrc.NewStringFlag(&cli.StringFlag{Name: "gateway-listen", Usage: "TCP address of the SMTP gateway (e.g. 0.0.0.0:25; empty: no gateway)", EnvVars: []string{"FLOWMAIL_GATEWAY_LISTEN"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "gateway-identity", Usage: "the gateway's identity key file (unprotected; certified as gateway@DOMAIN)", EnvVars: []string{"FLOWMAIL_GATEWAY_IDENTITY"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "gateway-certificate", Usage: "its name certificate for gateway@DOMAIN (as domain sign keeps it: <home>/domains/DOMAIN/gateway.cert)", EnvVars: []string{"FLOWMAIL_GATEWAY_CERTIFICATE"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "gateway-dkim-key", Usage: "PEM private key (RSA or Ed25519) that signs relayed mail", EnvVars: []string{"FLOWMAIL_GATEWAY_DKIM_KEY"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "gateway-dkim-selector", Value: "flowmail", Usage: "its DKIM selector (TXT at SELECTOR._domainkey.DOMAIN)", EnvVars: []string{"FLOWMAIL_GATEWAY_DKIM_SELECTOR"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "gateway-smarthost", Usage: "relay outbound mail through this `HOST:PORT` instead of the recipients' MX", EnvVars: []string{"FLOWMAIL_GATEWAY_SMARTHOST"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "gateway-tls-cert", Usage: "PEM certificate chain for STARTTLS on the gateway (with --gateway-tls-key; none: no STARTTLS)", EnvVars: []string{"FLOWMAIL_GATEWAY_TLS_CERT"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "gateway-tls-key", Usage: "its PEM private key", EnvVars: []string{"FLOWMAIL_GATEWAY_TLS_KEY"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "gateway-hostname", Usage: "the gateway's host name (SMTP greeting, Authentication-Results; default: the domain)", EnvVars: []string{"FLOWMAIL_GATEWAY_HOSTNAME"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "dns-server", Usage: "ask this DNS server (`IP[:PORT]`) instead of those of /etc/resolv.conf", EnvVars: []string{"FLOWMAIL_DNS_SERVER"}}),
	}
}

// checkGatewayFlags says, before anything starts, which flag a gateway
// lacks.
func checkGatewayFlags(c *cli.Context) error {
	if c.String("gateway-listen") == "" {
		return nil
	}
	for _, f := range []string{"gateway-identity", "gateway-certificate", "gateway-dkim-key"} {
		if c.String(f) == "" {
			return fmt.Errorf("--gateway-listen needs --%s too (see docs/OPERATING.md, \"Run flowmail for a domain\")", f)
		}
	}
	if (c.String("gateway-tls-cert") == "") != (c.String("gateway-tls-key") == "") {
		return errors.New("--gateway-tls-cert and --gateway-tls-key go together")
	}
	return nil
}

// startGateway starts the gateway the flags ask for beside node n; nil
// when --gateway-listen is empty.
func startGateway(ctx context.Context, c *cli.Context, n *node.Node, dataDir string, log *slog.Logger) (*gateway.Gateway, error) {
	if c.String("gateway-listen") == "" {
		return nil, nil
	}
	me, err := identity.ReadKeyFile(c.String("gateway-identity"), func() ([]byte, error) {
		return nil, errors.New("the gateway's key file must not be passphrase-protected: it runs unattended")
	})
	if err != nil {
		return nil, fmt.Errorf("--gateway-identity: %w", err)
	}
	cert, err := readSmallFile(c.String("gateway-certificate"), 8<<10)
	if err != nil {
		return nil, fmt.Errorf("--gateway-certificate: %w", err)
	}
	key, err := readDKIMKey(c.String("gateway-dkim-key"))
	if err != nil {
		return nil, fmt.Errorf("--gateway-dkim-key: %w", err)
	}
	names, err := newDNS(c)
	if err != nil {
		return nil, err
	}
	resolver := net.DefaultResolver
	if len(names.Servers) > 0 {
		server := names.Servers[0]
		resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		}}
	}
	var tlsConfig *tls.Config
	if f := c.String("gateway-tls-cert"); f != "" {
		cert, err := tls.LoadX509KeyPair(f, c.String("gateway-tls-key"))
		if err != nil {
			return nil, fmt.Errorf("--gateway-tls-cert/--gateway-tls-key: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	rd, _ := recordsOf(n)
	domain := ""
	if _, d, ok := strings.Cut(certName(cert), "@"); ok {
		domain = d
	}
	return gateway.Start(ctx, gateway.Config{
		Domain: domain, Identity: me, Certificate: cert,
		Network: n, KeyLogs: n.DHT(),
		Names: &naming.Resolver{DNS: names, DHT: nameDHT{rd}},
		DNS:   resolver, Listen: c.String("gateway-listen"), Hostname: c.String("gateway-hostname"), TLS: tlsConfig,
		DKIMSelector: c.String("gateway-dkim-selector"), DKIMKey: key,
		Smarthost: c.String("gateway-smarthost"),
		Spool:     filepath.Join(dataDir, "gateway"),
		Log:       log.With("part", "gateway"),
	})
}

// certName is the name a certificate file binds ("" when it does not
// parse; gateway.Start says why).
func certName(b []byte) string {
	if r, err := record.Parse(b); err == nil && r.Name != nil {
		return r.Name.Name
	}
	return ""
}

// readDKIMKey reads a PEM private key: PKCS #8 (RSA or Ed25519) or
// PKCS #1 (RSA), as openssl writes them.
func readDKIMKey(path string) (crypto.Signer, error) {
	b, err := readSmallFile(path, 64<<10)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("not a PEM file")
	}
	if k, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("not a PKCS #1 or PKCS #8 private key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("a %T cannot sign", k)
	}
	return s, nil
}
