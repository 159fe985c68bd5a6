package transport

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/quic-go/quic-go"
)

// certificate returns a self-signed certificate for the node's Ed25519
// key. Peers check only that its key is Ed25519 and equals the sign_key of
// the pubkey block in our HELLO; names and dates do not matter, so they
// are fixed and wide.
func certificate(key ed25519.PrivateKey) (tls.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("transport: certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "flowmail node"},
		NotBefore:    time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("transport: creating certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// verifyPeerCertificate accepts exactly one certificate whose key is
// Ed25519. TLS has already checked that the peer holds the private key;
// the binding to a node ID happens in the HELLO exchange.
func verifyPeerCertificate(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	if len(rawCerts) != 1 {
		return fmt.Errorf("peer presented %d certificates, want 1", len(rawCerts))
	}
	cert, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return fmt.Errorf("peer certificate: %w", err)
	}
	if _, ok := cert.PublicKey.(ed25519.PublicKey); !ok {
		return fmt.Errorf("peer certificate key is %T, want Ed25519", cert.PublicKey)
	}
	return nil
}

// tlsConfigs returns the listener's and the dialer's TLS settings: TLS 1.3
// only, our certificate on both sides, ALPN flowmail/1, no resumption.
func tlsConfigs(cert tls.Certificate) (server, client *tls.Config) {
	server = &tls.Config{
		MinVersion:             tls.VersionTLS13,
		MaxVersion:             tls.VersionTLS13,
		Certificates:           []tls.Certificate{cert},
		ClientAuth:             tls.RequireAnyClientCert,
		VerifyPeerCertificate:  verifyPeerCertificate,
		NextProtos:             []string{ALPN},
		SessionTicketsDisabled: true,
	}
	client = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		// Chains and names are not how peers are trusted: the HELLO binds
		// the certificate key to a node ID, checked after the handshake.
		InsecureSkipVerify:    true,
		VerifyPeerCertificate: verifyPeerCertificate,
		NextProtos:            []string{ALPN},
		ServerName:            "flowmail",
	}
	return server, client
}

// peerCertKey returns the Ed25519 key of the peer's certificate.
func peerCertKey(c *quic.Conn) (ed25519.PublicKey, error) {
	certs := c.ConnectionState().TLS.PeerCertificates
	if len(certs) != 1 {
		return nil, errors.New("no peer certificate")
	}
	k, ok := certs[0].PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("peer certificate key is not Ed25519")
	}
	return k, nil
}
