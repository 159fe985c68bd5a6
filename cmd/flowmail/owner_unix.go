//go:build unix

package main

import (
	"fmt"
	"os"
	"syscall"
)

// ownedByMe checks that dir belongs to this user and that nobody else can
// write in it, before send and fetch trust the peers listed there: a
// directory in a shared place could have been planted by another user.
func ownedByMe(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if int(st.Uid) != os.Getuid() {
		return fmt.Errorf("%s belongs to another user: not joining the testnet it lists (pass --testnet DIR or --bootstrap)", dir)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s is writable by others (mode %v): not joining the testnet it lists; chmod go-w it, or pass --testnet DIR", dir, fi.Mode().Perm())
	}
	return nil
}
