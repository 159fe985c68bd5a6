package mail

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

// TestLocatorNamesEveryShardInClear: with BuildInput.Locator every index
// block names the locator block in clear, the locator lists exactly the
// manifest's shard IDs, and the recipient still opens the mail; without
// it no index block names one.
func TestLocatorNamesEveryShardInClear(t *testing.T) {
	c := testCodec(t)
	// Bob's difficulty makes the grinder work over the longer block:
	// with the locator its nonce sits at another offset of the last chunk.
	alice, bob := testIdentity(t, seedAlice, 0), testIdentity(t, seedBob, 12)
	msg := composeTo(t, alice, []*identity.Identity{bob}, "locator", "held for bob")
	msg = append(msg, randomBytes(70000, 7)...)
	b, err := c.Build(context.Background(), BuildInput{Sender: alice, Recipients: publicKeys(bob), Message: bytes.NewReader(msg), Size: int64(len(msg)), Now: testNow, Rand: detRand(1), Locator: true}, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	if len(b.Data) != len(b.ShardIDs)+1 {
		t.Fatalf("%d data blocks for %d shards: want the locator after them", len(b.Data), len(b.ShardIDs))
	}
	last := b.Data[len(b.Data)-1]
	if last.ID != b.Locator || block.Sum(last.Bytes) != b.Locator {
		t.Fatal("the last data block is not the locator")
	}
	x, err := block.ParseIndex(b.Index[0].Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !x.Header.HasLocator || x.Locator != b.Locator {
		t.Fatalf("index block names locator %v (flag %v), want %v", x.Locator.Short(), x.Header.HasLocator, b.Locator.Short())
	}
	ids, err := ParseLocator(last.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	man, err := OpenIndex(bob, b.Index[0].ID, b.Index[0].Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != len(man.ShardIDs) {
		t.Fatalf("locator lists %d IDs, manifest %d", len(ids), len(man.ShardIDs))
	}
	for i := range ids {
		if ids[i] != man.ShardIDs[i] {
			t.Fatalf("locator ID %d differs from the manifest's", i)
		}
	}
	if _, got, err := openMem(c, bob, man, blockShards(man, blocksOf(b.Data), nil), testNow); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("open with a locator: %v", err)
	}

	plain := build(t, c, alice, msg, 2, bob)
	defer plain.Release()
	if x, err := block.ParseIndex(plain.Index[0].Bytes); err != nil || x.Header.HasLocator {
		t.Fatalf("without Locator the index block names one (%v)", err)
	}
}

func TestParseLocatorRefuses(t *testing.T) {
	ids := []block.ID{{1}, {2}, {3}}
	good := LocatorBlock(ids)
	if got, err := ParseLocator(good); err != nil || len(got) != 3 || got[2] != ids[2] {
		t.Fatalf("round trip: %v", err)
	}
	withDel := block.Data{Header: block.Header{HasDeletion: true}, Payload: good[3:]}.Encode()
	for name, b := range map[string][]byte{
		"one ID":        LocatorBlock(ids[:1]),
		"partial ID":    good[:len(good)-1],
		"deletion hash": withDel,
		"index type":    append([]byte{1, 3, 0}, good[3:]...),
		"empty":         nil,
	} {
		if _, err := ParseLocator(b); !errors.Is(err, ErrLocator) {
			t.Errorf("%s: %v, want ErrLocator", name, err)
		}
	}
}
