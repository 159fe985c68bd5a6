package node

import (
	"bytes"
	"strings"
	"testing"
)

func TestBootstrapListOverTheLimitIsRefusedNotCut(t *testing.T) {
	// Comments pad the file past the limit; cutting it would leave the
	// last line as "127.0.0.1:44", a wrong port.
	var b bytes.Buffer
	for b.Len() < maxBootstrapFile-10 {
		b.WriteString("# padding padding padding padding padding padding\n")
	}
	b.WriteString("127.0.0.1:4410\n")
	if _, err := parseBootstrapLines(&b, "big.txt"); err == nil || !strings.Contains(err.Error(), "over") {
		t.Fatalf("an oversized list: %v", err)
	}
	got, err := parseBootstrapLines(strings.NewReader("# a peer\n127.0.0.1:4410\n"), "small.txt")
	if err != nil || len(got) != 1 || got[0].Addr.Port() != 4410 {
		t.Fatalf("a small list: %v, %v", got, err)
	}
}
