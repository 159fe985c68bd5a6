package main

import (
	"crypto/ed25519"
	crand "crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServerGatewayFlags: a gateway without its key files is refused
// before the server starts, naming the missing flag.
func TestServerGatewayFlags(t *testing.T) {
	_, _, err := runCLI(t, "--home", t.TempDir(), "server", "--listen", "127.0.0.1:0", "--account-listen", "127.0.0.1:0",
		"--gateway-listen", "127.0.0.1:0", "--gateway-identity", "id.key")
	if err == nil || !strings.Contains(err.Error(), "--gateway-certificate") {
		t.Fatalf("err = %v, want one naming --gateway-certificate", err)
	}
	_, _, err = runCLI(t, "--home", t.TempDir(), "server", "--listen", "127.0.0.1:0", "--account-listen", "127.0.0.1:0",
		"--gateway-listen", "127.0.0.1:0", "--gateway-identity", "id.key", "--gateway-certificate", "gw.cert",
		"--gateway-dkim-key", "dkim.pem", "--gateway-tls-cert", "tls.pem")
	if err == nil || !strings.Contains(err.Error(), "--gateway-tls-key") {
		t.Fatalf("err = %v, want one naming --gateway-tls-key", err)
	}
}

// TestReadDKIMKey reads the key forms openssl writes, and refuses others.
func TestReadDKIMKey(t *testing.T) {
	dir := t.TempDir()
	rk, err := rsa.GenerateKey(crand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	_, ek, _ := ed25519.GenerateKey(crand.Reader)
	pkcs8 := func(k any) []byte {
		b, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: b})
	}
	for name, c := range map[string]struct {
		pem []byte
		ok  bool
	}{
		"pkcs1-rsa":     {pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}), true},
		"pkcs8-rsa":     {pkcs8(rk), true},
		"pkcs8-ed25519": {pkcs8(ek), true},
		"not-pem":       {[]byte("hello"), false},
		"not-a-key":     {pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")}), false},
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, c.pem, 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := readDKIMKey(p)
		if (err == nil) != c.ok || c.ok && k == nil {
			t.Errorf("%s: %v, %v", name, k, err)
		}
	}
}
