package rawquic

import (
	"context"
	"testing"

	"go.uber.org/goleak"
)

func TestCopyDeliversAndCloseStopsEverything(t *testing.T) {
	defer goleak.VerifyNone(t)
	p, err := Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 1 << 20} {
		if err := p.Copy(context.Background(), make([]byte, n)); err != nil {
			t.Fatalf("copy of %d bytes: %v", n, err)
		}
	}
	p.Close()
}
