package rendezvous

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(wedgeChildEnv) != "" {
		// This process wedges the library on purpose (see
		// TestWedgedDHTIsReplaced) and exits when the test ends. The
		// wedged node leaves exactly two goroutines nobody can stop: its
		// socket reader, blocked for good in arena.Pop, and ours blocked
		// in its Stop, waiting for that reader.
		goleak.VerifyTestMain(m,
			goleak.IgnoreTopFunction("github.com/nictuku/dht.arena.Pop"),
			goleak.IgnoreAnyFunction("github.com/flowmail/flowmail/rendezvous.stopDHT.func1"))
		return
	}
	goleak.VerifyTestMain(m)
}
