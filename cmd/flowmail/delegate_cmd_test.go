package main

import (
	"strings"
	"testing"
)

// TestDelegateChecksItsDatesFirst: --days and --until are checked before
// anything is read or signed, and each refusal names the flag to fix.
func TestDelegateChecksItsDatesFirst(t *testing.T) {
	home := t.TempDir()
	if _, _, err := runCLI(t, "--home", home, "init", "--no-passphrase", "--difficulty", "4"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--days", "0"}, "--days 0: give 1 to 30"},
		{[]string{"--days", "31"}, "--days 31: give 1 to 30"},
		{[]string{"--days", "3", "--until", "2099-01-01T00:00:00Z"}, "not both"},
		{[]string{"--until", "tomorrow"}, "want RFC 3339"},
		{[]string{"--until", "2099-01-01T00:00:00Z"}, "within the next 30 days"},
	} {
		// A bootstrap address nothing answers on: a check that came after
		// joining would fail on the network instead.
		args := append([]string{"--home", home, "delegate", "--bootstrap", "127.0.0.1:9"}, tc.args...)
		_, _, err := runCLI(t, append(args, "fm1qqqq")...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("delegate %v: %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
}
