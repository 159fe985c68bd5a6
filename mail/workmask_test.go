package mail

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"strconv"
	"testing"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/testseed"
	"github.com/flowmail/flowmail/internal/vectors"
	"github.com/flowmail/flowmail/pow"
)

// vectorDora is the recipient of the index vectors: difficulty 18, so
// two bits of its work are hidden behind the mask.
func vectorDora() *identity.Identity {
	var seed [identity.SeedSize]byte
	for i := range seed {
		seed[i] = 0x50 + byte(i)
	}
	id, err := identity.FromSeed(seed, 18, testCreated)
	if err != nil {
		panic(err)
	}
	return id
}

var (
	vectorGrantKey = [32]byte{0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b, 0x4b}
	vectorGrantID  = [GrantIDSize]byte{0x47, 0x47, 0x47, 0x47, 0x47, 0x47, 0x47, 0x47, 0x47, 0x47, 0x47, 0x47, 0x47, 0x47, 0x47, 0x47}
)

// testManifest is a one-recipient manifest of a 2000-byte body.
func testManifest() *Manifest {
	l, _ := LayoutFor(2000)
	m := &Manifest{Layout: l}
	for i := range l.Shards() {
		m.ShardIDs = append(m.ShardIDs, block.Sum([]byte{byte(i)}))
	}
	m.IndexDeletion[0], m.ContentKey[0] = 1, 2
	return m
}

// indexBlock seals man to r and grinds the nonce to bits of the target
// sealing gives (all of r's D, or the public prefix under claim); with
// bits < 0, to what sealIndex grinds to.
func indexBlock(t testing.TB, man *Manifest, r *identity.PublicKey, claim *GrantClaim, bits int) []byte {
	sealed, target, want, err := sealManifest(man, r, claim)
	if err != nil {
		t.Fatal(err)
	}
	if bits < 0 {
		bits = want
	}
	blk := block.Index{Header: block.Header{HasDeletion: true, DeletionHash: block.DeletionHash(man.IndexDeletion)}, Sealed: sealed}.Encode()
	if _, err := pow.Solve(context.Background(), blk, target, bits, pow.Options{Workers: 2}); err != nil {
		t.Fatal(err)
	}
	return blk
}

// vectorT lets the vector generator, which has no *testing.T, use the
// test helpers: a failure panics.
type vectorT struct{ testing.TB }

func (vectorT) Fatal(args ...any) { panic(args) }
func (vectorT) Helper()           {}

// lacksFullWork rebuilds the block until its ID misses the hidden bits,
// which a block ground only to the prefix still hits one time in 2^(D-L).
func lacksFullWork(me *identity.Identity, build func() []byte) []byte {
	for {
		blk := build()
		x, err := UnmaskIndex(me, block.Sum(blk), blk)
		if err != nil {
			panic(err)
		}
		if !x.FullWork {
			return blk
		}
	}
}

func indexVectors(_ *identity.Identity) []vectors.Vector {
	dora := vectorDora()
	t := vectorT{}
	claim := &GrantClaim{ID: vectorGrantID, Key: vectorGrantKey}
	other := vectorGrantKey
	other[0] ^= 1
	params := func(key [32]byte) map[string]string {
		return map[string]string{"recipient": "dora", "grant_key": hex.EncodeToString(key[:])}
	}
	iv := func(name, note string, blk []byte, p map[string]string, errName string) vectors.Vector {
		return vectors.Vector{Name: name, Function: "UnmaskIndex", Input: hex.EncodeToString(blk), Params: p, Error: errName, Note: note}
	}
	granted := lacksFullWork(dora, func() []byte { return indexBlock(t, testManifest(), dora.Public(), claim, -1) })
	noWork := lacksFullWork(dora, func() []byte {
		return indexBlock(t, testManifest(), dora.Public(), nil, RoutePrefix(dora.Difficulty()))
	})
	var unrouted []byte
	for {
		unrouted = indexBlock(t, testManifest(), dora.Public(), nil, 0)
		if block.CommonPrefixLen(block.Sum(unrouted), dora.ID()) < RouteBits {
			break
		}
	}
	return []vectors.Vector{
		iv("index_full_work", "6: cpl(id, R.id XOR mask) >= D; the claim is not looked at", indexBlock(t, testManifest(), dora.Public(), nil, -1), params(vectorGrantKey), ""),
		iv("index_granted", "17.3: ground to L = 16 bits only, with a claim the grant key verifies", granted, params(vectorGrantKey), ""),
		iv("index_claim_other_key", "17.4 step 4: grant_mac MUST verify under the grant's key", granted, params(other), "grant claim does not verify"),
		iv("index_no_work_no_claim", "17.4 step 2: without the full work, a claim is needed", noWork, params(vectorGrantKey), "index block lacks the proof of work"),
		iv("index_not_routable", "6: a recipient MUST NOT fetch a block outside its L-bit prefix", unrouted, params(vectorGrantKey), "index block outside the recipient's routing prefix"),
	}
}

// checkIndexVector unmasks b for dora, opens it, and checks a claim
// under the vector's grant key when the block lacks the full work.
func checkIndexVector(v vectors.Vector, b []byte) (map[string]string, string) {
	if v.Params["recipient"] != "dora" {
		return nil, "bad recipient param"
	}
	key, err := hex.DecodeString(v.Params["grant_key"])
	if err != nil || len(key) != 32 {
		return nil, "bad grant_key param"
	}
	me := vectorDora()
	x, err := UnmaskIndex(me, block.Sum(b), b)
	if err != nil {
		return nil, errName(err)
	}
	man, err := x.Open()
	if err != nil {
		return nil, errName(err)
	}
	out := map[string]string{"full_work": strconv.FormatBool(x.FullWork), "content_key": hex.EncodeToString(man.ContentKey[:])}
	if !x.FullWork {
		if !man.HasClaim() {
			return nil, errName(ErrProofOfWork)
		}
		if !x.CheckClaim(man, (*[32]byte)(key)) {
			return nil, errName(ErrClaim)
		}
		out["grant_id"] = hex.EncodeToString(man.GrantID[:])
	}
	return out, ""
}

func TestSealMatchesSingleShotHPKE(t *testing.T) {
	// The sealed part from a sender context must open with the single-shot
	// Open of identity (spec 4.4 did not change).
	me := vectorDora()
	man := testManifest()
	sealed, _, _, err := sealManifest(man, me.Public(), nil)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := me.Open(block.LabelIndex, sealed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeManifest(plain); err != nil {
		t.Fatal(err)
	}
}

func TestGrantedBlockNeedsOnlyThePrefix(t *testing.T) {
	me := vectorDora()
	claim := &GrantClaim{ID: vectorGrantID, Key: vectorGrantKey}
	blk := lacksFullWork(me, func() []byte { return indexBlock(t, testManifest(), me.Public(), claim, -1) })
	id := block.Sum(blk)
	if cpl := block.CommonPrefixLen(id, me.ID()); cpl < RouteBits {
		t.Fatalf("granted block shares %d bits with the recipient, want at least %d", cpl, RouteBits)
	}
	if _, err := OpenIndex(me, id, blk); !errors.Is(err, ErrProofOfWork) {
		t.Fatalf("OpenIndex of a granted block: %v, want ErrProofOfWork", err)
	}
	x, err := UnmaskIndex(me, id, blk)
	if err != nil {
		t.Fatal(err)
	}
	man, err := x.Open()
	if err != nil {
		t.Fatal(err)
	}
	if !x.CheckClaim(man, &claim.Key) {
		t.Fatal("the grant's own claim does not verify")
	}
	// The claim binds the recipient: the same MAC checked as if for
	// another address fails.
	x.recipient[0] ^= 1
	if x.CheckClaim(man, &claim.Key) {
		t.Fatal("a claim verified for another recipient")
	}
}

// TestObserverCannotTellGrantedFromFullWork is the "nobody can probe"
// property seen from a storer (spec 17.8): it knows dora's address and
// D, and sees the IDs of index blocks to her. The one thing it can
// compute from an ID, its common prefix with her address, has the same
// distribution for granted blocks and full-work ones. Without the mask
// every full-work block would share D bits with her and the test fails.
func TestObserverCannotTellGrantedFromFullWork(t *testing.T) {
	rng := testseed.Rand(t)
	dora := vectorDora()
	d := dora.Difficulty()
	claim := &GrantClaim{ID: vectorGrantID, Key: vectorGrantKey}
	const n = 64
	// hits counts IDs sharing at least D bits with dora, the naive test
	// for "carries the full work"; sum adds the common prefix lengths.
	var hits, sum [2]int
	for class, c := range []*GrantClaim{nil, claim} {
		for range n {
			man := testManifest()
			binary.BigEndian.PutUint64(man.ContentKey[:], rng.Uint64()) // HPKE's own randomness comes from crypto/rand
			blk := indexBlock(t, man, dora.Public(), c, -1)
			cpl := block.CommonPrefixLen(block.Sum(blk), dora.ID())
			if cpl < RouteBits {
				t.Fatalf("an index block shares %d bits with dora, below the routing prefix", cpl)
			}
			sum[class] += cpl
			if cpl >= d {
				hits[class]++
			}
		}
	}
	// Both classes: P(cpl >= D) = 2^-(D-L) = 1/4. A two-proportion z test
	// at 6 sigma: a correct implementation fails it about once in 10^9
	// runs; an unmasked one (full work always >= D) gives z near 9.
	p1, p2 := float64(hits[0])/n, float64(hits[1])/n
	pool := float64(hits[0]+hits[1]) / (2 * n)
	z := (p1 - p2) / math.Sqrt(pool*(1-pool)*2/n)
	t.Logf("share of IDs with cpl >= D: full work %.3f, granted %.3f (expected 0.25 both), z = %.2f; mean cpl %.2f vs %.2f",
		p1, p2, z, float64(sum[0])/n, float64(sum[1])/n)
	if math.Abs(z) > 6 {
		t.Fatalf("an observer tells granted from full-work blocks by their IDs: z = %.2f (seed in the log)", z)
	}
}
