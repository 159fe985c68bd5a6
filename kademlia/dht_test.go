package kademlia

import (
	"testing"

	"github.com/flowmail/flowmail/identity"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// identityBlock returns a valid pubkey block.
func identityBlock(t *testing.T) []byte {
	t.Helper()
	id, err := identity.FromSeed([32]byte{9}, 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	return id.Public().Block
}
