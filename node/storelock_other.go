//go:build !unix

package node

// storeLocked cannot tell on this system; Start reports Badger's error.
func storeLocked(string) bool { return false }
