package main

import (
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// TestMain runs the tests without the developer's FLOWMAIL_* settings
// (a FLOWMAIL_BOOTSTRAP would send test clients off this machine), and
// checks that no test leaves a goroutine behind.
func TestMain(m *testing.M) {
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "FLOWMAIL_") {
			os.Unsetenv(name)
		}
	}
	goleak.VerifyTestMain(m)
}
