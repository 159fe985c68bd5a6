package main

import (
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
}
