package identity

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/internal/testseed"
)

// testRand is a deterministic source of key material for one test, from
// its seed (FLOWMAIL_SEED when set).
func testRand(t testing.TB) *rand.ChaCha8 { return testseed.ChaCha8(t) }

func mustNew(t testing.TB, r *rand.ChaCha8) (*Identity, *NextKey) {
	t.Helper()
	id, next, err := New(8, testCreated, r)
	if err != nil {
		t.Fatal(err)
	}
	return id, next
}

func TestNewCommitsToASeparateNextKey(t *testing.T) {
	id, next := mustNew(t, testRand(t))
	if id.Public().Next != next.Commitment() || next.Address() != id.ID() || next.Generation() != 1 {
		t.Fatalf("next key %v does not belong to %s at generation 0", next, id.Address())
	}
	if id.ID() != id.Public().ID || id.Generation() != 0 {
		t.Fatal("generation 0's address is not its pubkey block's ID")
	}
	// A thief with only the identity's key file cannot find the next key.
	if _, err := id.DerivedNextKey(); !errors.Is(err, ErrNoDerivedNextKey) {
		t.Fatalf("DerivedNextKey of a New identity: %v", err)
	}
}

func TestRotateKeepsTheAddressAndRevealsTheNextKey(t *testing.T) {
	r := testRand(t)
	id, next := mustNew(t, r)
	now := testCreated.Add(time.Hour)
	nid, after, err := id.Rotate(next, 12, now, r)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case nid.ID() != id.ID() || nid.Address() != id.Address():
		t.Fatal("the address changed")
	case nid.Public().ID == id.Public().ID:
		t.Fatal("the pubkey block did not change")
	case !bytes.Equal(nid.Public().SignKey, next.VerifyKey()):
		t.Fatal("the new signing key is not the revealed next key")
	case nid.Public().Next != after.Commitment() || after.Generation() != 2 || after.Address() != id.ID():
		t.Fatal("the new pubkey block does not commit to the new next key")
	case nid.Generation() != 1 || nid.Difficulty() != 12 || !nid.Created().Equal(now):
		t.Fatalf("generation %d, D %d, created %v", nid.Generation(), nid.Difficulty(), nid.Created())
	}
	if _, _, err := nid.Rotate(after, 12, now, r); err != nil {
		t.Fatalf("second rotation: %v", err)
	}
}

func TestRotateRefusesAKeyTheIdentityDidNotCommitTo(t *testing.T) {
	r := testRand(t)
	id, next := mustNew(t, r)
	_, otherNext := mustNew(t, r)
	nid, after, err := id.Rotate(next, 8, testCreated, r)
	if err != nil {
		t.Fatal(err)
	}
	// A thief who made up a key for the right address and generation.
	forged := newNextKey([SeedSize]byte{1, 2, 3}, id.ID(), 1)
	for name, k := range map[string]*NextKey{
		"another identity's next key": otherNext,
		"a forged key":                forged,
		"the key already revealed":    next,
	} {
		from := id
		if name == "the key already revealed" {
			from = nid
		}
		if _, _, err := from.Rotate(k, 8, testCreated, r); !errors.Is(err, ErrNextKeyMismatch) {
			t.Errorf("%s: %v, want ErrNextKeyMismatch", name, err)
		}
	}
	// The generation-2 key, skipping one, is refused too.
	if _, _, err := id.Rotate(after, 8, testCreated, r); !errors.Is(err, ErrNextKeyMismatch) {
		t.Errorf("skipping a generation: %v", err)
	}
}

func TestRotationsStopAtMaxRotations(t *testing.T) {
	r := testRand(t)
	id, next := mustNew(t, r)
	var err error
	for i := range block.MaxRotations {
		if id, next, err = id.Rotate(next, 8, testCreated.Add(time.Duration(i)*time.Hour), r); err != nil {
			t.Fatalf("rotation %d: %v", i+1, err)
		}
	}
	if _, _, err := id.Rotate(next, 8, testCreated, r); !errors.Is(err, ErrTooManyRotations) {
		t.Fatalf("rotation %d: %v", block.MaxRotations+1, err)
	}
}

func TestRetiredKeyOpensMailUntilTheGracePeriodEnds(t *testing.T) {
	r := testRand(t)
	id, next := mustNew(t, r)
	sealed, err := id.Public().Seal(block.LabelIndex, []byte("sent just before the rotation"))
	if err != nil {
		t.Fatal(err)
	}
	rotated := testCreated.Add(time.Hour)
	nid, _, err := id.Rotate(next, 8, rotated, r)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := nid.Open(block.LabelIndex, sealed); err != nil || string(pt) != "sent just before the rotation" {
		t.Fatalf("within the grace period: %q, %v", pt, err)
	}
	if n := nid.ForgetRetired(rotated.Add(GracePeriod - time.Second)); n != 1 {
		t.Fatalf("%d retired keys kept a second before the end of grace, want 1", n)
	}
	if _, err := nid.Open(block.LabelIndex, sealed); err != nil {
		t.Fatalf("a second before the end of grace: %v", err)
	}
	if n := nid.ForgetRetired(rotated.Add(GracePeriod)); n != 0 {
		t.Fatalf("%d retired keys kept after the grace period", n)
	}
	if _, err := nid.Open(block.LabelIndex, sealed); !errors.Is(err, ErrNotForMe) {
		t.Fatalf("after the grace period: %v", err)
	}
	if GracePeriod != block.MaxLifetime+24*time.Hour {
		t.Fatalf("GracePeriod %v, the spec says MaxLifetime + 1 day", GracePeriod)
	}
}

func TestRotatedKeyFilesRoundTrip(t *testing.T) {
	r := testRand(t)
	dir := t.TempDir()
	id, next := mustNew(t, r)
	sealed, err := id.Public().Seal(block.LabelIndex, []byte("old"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if id, next, err = id.Rotate(next, 9, testCreated.Add(time.Duration(i+1)*time.Hour), r); err != nil {
			t.Fatal(err)
		}
	}
	opt := KeyFileOptions{Passphrase: []byte("pw"), ScryptLogN: 10}
	pass := func() ([]byte, error) { return []byte("pw"), nil }
	keyPath, nextPath := filepath.Join(dir, "identity.key"), filepath.Join(dir, "next.key")
	if err := WriteKeyFile(keyPath, id, opt); err != nil {
		t.Fatal(err)
	}
	if err := WriteNextKeyFile(nextPath, next, opt); err != nil {
		t.Fatal(err)
	}
	got, err := ReadKeyFile(keyPath, pass)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID() != id.ID() || got.Generation() != 2 || !bytes.Equal(got.Public().Block, id.Public().Block) || len(got.RetiredUntil()) != 2 {
		t.Fatalf("read back generation %d, %d retired", got.Generation(), len(got.RetiredUntil()))
	}
	if _, err := got.Open(block.LabelIndex, sealed); err != nil {
		t.Fatalf("the retired key did not survive the file: %v", err)
	}
	gotNext, err := ReadNextKeyFile(nextPath, pass)
	if err != nil {
		t.Fatal(err)
	}
	if gotNext.Commitment() != got.Public().Next || gotNext.Generation() != 3 || gotNext.Address() != id.ID() {
		t.Fatalf("next key read back as %v", gotNext)
	}
	if _, err := ReadNextKeyFile(keyPath, pass); !errors.Is(err, ErrKeyFileRole) {
		t.Fatalf("identity file read as a next key: %v", err)
	}
	if _, err := ReadKeyFile(nextPath, pass); !errors.Is(err, ErrKeyFileRole) {
		t.Fatalf("next key file read as an identity: %v", err)
	}
	// Rotating once more replaces both files in place.
	nid, after, err := got.Rotate(gotNext, 9, testCreated.Add(5*time.Hour), r)
	if err != nil {
		t.Fatal(err)
	}
	nid.ForgetRetired(testCreated.Add(90*time.Minute + GracePeriod)) // generation 0 goes, 1 and 2 stay
	if err := ReplaceKeyFile(keyPath, nid, opt); err != nil {
		t.Fatal(err)
	}
	if err := ReplaceNextKeyFile(nextPath, after, opt); err != nil {
		t.Fatal(err)
	}
	if got, err = ReadKeyFile(keyPath, pass); err != nil || got.Generation() != 3 || len(got.RetiredUntil()) != 2 {
		t.Fatalf("after replace: %v", err)
	}
	if _, err := got.Open(block.LabelIndex, sealed); !errors.Is(err, ErrNotForMe) {
		t.Fatalf("a forgotten key was written back: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("files left behind: %v", entries)
	}
}

// TestFirstLayoutKeyFileStillReads: a key file of the first layout (a bare
// seed) loads as FromSeed does, and can rotate with its derived next key.
func TestFirstLayoutKeyFileStillReads(t *testing.T) {
	want := mustFromSeed(t, 4, 8)
	seed := seedOf(4)
	b := append([]byte(keyFileMagicV1+"\x00"), seed[:]...)
	b = append(b, 8)
	b = binary.BigEndian.AppendUint64(b, uint64(testCreated.Unix()))
	got, err := DecodeKeyFile(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Public().Block, want.Public().Block) {
		t.Fatal("first-layout key file gives another pubkey block")
	}
	next, err := got.DerivedNextKey()
	if err != nil {
		t.Fatal(err)
	}
	nid, after, err := got.Rotate(next, 8, testCreated, testRand(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nid.DerivedNextKey(); !errors.Is(err, ErrNoDerivedNextKey) || after.Commitment() != nid.Public().Next {
		t.Fatal("after a rotation the next key must be a secret of its own")
	}
	if _, err := DecodeNextKeyFile(b, nil); !errors.Is(err, ErrKeyFileRole) {
		t.Fatalf("first-layout file read as a next key: %v", err)
	}
	if !ed25519.PublicKey(next.VerifyKey()).Equal(nid.Public().SignKey) {
		t.Fatal("rotation did not reveal the derived key")
	}
}
