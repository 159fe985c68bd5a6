// Package recordtest gives the tests of storage and of the network the
// records of docs/PROTOCOL.md section 15 as testdata/vectors/record.json
// holds them: one identity's key log at every version, and the records a
// node must refuse. Only tests import it.
//
// It imports block, record and internal/vectors.
package recordtest

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/internal/vectors"
	"github.com/flowmail/flowmail/record"
)

// Alice is the vectors' identity: she rotates twice, then revokes (or
// moves), and the forgeries made against her log.
type Alice struct {
	Address block.ID
	Slot    block.ID // of her key log
	// V0, V1, V2: her key log with no event, one rotation, two.
	V0, V1, V2 []byte
	// Fork is a second rotation from V1 other than V2's: two histories.
	Fork []byte
	// Revoked is V2 and a revocation; Moved is V2 and a move.
	Revoked, Moved []byte
	// WrongKey is V1 and a rotation signed by generation 1's current key,
	// not the committed next key: what a thief of that key would publish.
	WrongKey []byte
	// AfterRevocation is Revoked and a rotation after it.
	AfterRevocation []byte
	// TooLarge is V2 padded past block.MaxRecordSize.
	TooLarge []byte
	// Other is another identity's key log (another slot).
	Other []byte
	// D1, D2 are versions 1 and 2 of her delegation; D2Fork another
	// version 2; DRevoked a version 3 that revokes it.
	D1, D2, D2Fork, DRevoked []byte
	DelegationSlot           block.ID
}

// Load reads the cast from record.json.
func Load() (*Alice, error) {
	b, err := os.ReadFile(vectors.Path("record.json"))
	if err != nil {
		return nil, fmt.Errorf("recordtest: %w", err)
	}
	var f vectors.File
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("recordtest: record.json: %w", err)
	}
	byName := make(map[string]vectors.Vector, len(f.Vectors))
	for _, v := range f.Vectors {
		byName[v.Name] = v
	}
	var firstErr error
	get := func(name, param string) []byte {
		v, ok := byName[name]
		s := v.Input
		if param != "" {
			s = v.Params[param]
		}
		out, err := hex.DecodeString(s)
		if (!ok || err != nil || len(out) == 0) && firstErr == nil {
			firstErr = fmt.Errorf("recordtest: record.json has no usable vector %q (%q)", name, param)
		}
		return out
	}
	a := &Alice{
		V0:              get("key_log_inception_only", ""),
		V1:              get("key_log_extension", "held"),
		V2:              get("key_log_two_rotations", ""),
		Fork:            get("key_log_forked", ""),
		Revoked:         get("key_log_revoked_by_next_key", ""),
		Moved:           get("key_log_moved", ""),
		WrongKey:        get("key_log_rotation_by_the_current_key", ""),
		AfterRevocation: get("key_log_event_after_revocation", ""),
		TooLarge:        get("record_over_4KiB", ""),
		Other:           get("key_log_other_identity", ""),
		D1:              get("delegation_next_version", "held"),
		D2:              get("delegation", ""),
		D2Fork:          get("delegation_same_seq_other_bytes", ""),
		DRevoked:        get("delegation_skips_a_version", ""),
	}
	if firstErr != nil {
		return nil, firstErr
	}
	v2, err := record.Parse(a.V2)
	if err != nil {
		return nil, fmt.Errorf("recordtest: V2: %w", err)
	}
	d1, err := record.Parse(a.D1)
	if err != nil {
		return nil, fmt.Errorf("recordtest: D1: %w", err)
	}
	a.Address, a.Slot, a.DelegationSlot = v2.KeyLog.Address(), v2.Slot(), d1.Slot()
	return a, nil
}

// MustLoad is Load for a test.
func MustLoad(t testing.TB) *Alice {
	t.Helper()
	a, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	return a
}
