package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestDemoDeliversTheMail runs the README's first command: the demo sends
// a mail across a loopback testnet and checks it arrived byte for byte;
// its progress counts the message's bytes, as a real send's does.
func TestDemoDeliversTheMail(t *testing.T) {
	out, stderr, err := runCLI(t, "testnet", "--demo", "--dir", t.TempDir())
	if err != nil {
		t.Fatalf("demo: %v\nstdout: %s\nstderr: %s", err, out, stderr)
	}
	sent := regexp.MustCompile(`alice sent (\d+) bytes`).FindStringSubmatch(out + stderr)
	if sent == nil || !strings.Contains(out, "OK: bob received exactly the "+sent[1]+" bytes alice sent") {
		t.Fatalf("demo did not report the mail delivered:\nstdout: %s\nstderr: %s", out, stderr)
	}
	if !strings.Contains(stderr, "stored "+sent[1]+" bytes in ") {
		t.Errorf("demo's store progress does not count the %s message bytes:\n%s", sent[1], stderr)
	}
}
