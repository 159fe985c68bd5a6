//go:build !unix

package mailbox

// lockDir does nothing where flock is missing: one fetch at a time is then
// the caller's duty.
func lockDir(string) (func() error, error) { return func() error { return nil }, nil }
