package onion

import (
	"bytes"
	"errors"
	mrand "math/rand/v2"
	"testing"

	"github.com/flowmail/flowmail/block"
)

func TestSplitPutAndAssembleInAnyOrder(t *testing.T) {
	rnd := mrand.New(mrand.NewPCG(testSeed(t), 1))
	for _, size := range []int{1, 4096, MaxPutChunk(1), MaxPutChunk(1) + 1, MaxPutChunk(0) + 1, 65536, 261120} {
		blk := make([]byte, size)
		for i := range blk {
			blk[i] = byte(rnd.Uint32())
		}
		parts, err := SplitPut(blk, 3600, 1)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range parts {
			surbs := 0
			if i == len(parts)-1 {
				surbs = 1
			}
			if len(p.Chunk) > MaxPutChunk(surbs) {
				t.Fatalf("size %d: part %d of %d bytes does not fit beside %d reply blocks", size, i, len(p.Chunk), surbs)
			}
			// Each part encodes into one exit body.
			body := &ExitBody{Request: p}
			if surbs == 1 {
				body.SURBs = []SURB{{FirstHop: block.ID{1}, Addr: testAddr(1)}}
			}
			if _, err := body.Encode(); err != nil {
				t.Fatalf("size %d part %d: %v", size, i, err)
			}
		}
		if want := (size + MaxPutChunk(0) - 1) / MaxPutChunk(0); len(parts) > want+1 {
			t.Fatalf("size %d in %d parts, want at most %d", size, len(parts), want+1)
		}
		var a Assembler
		surb := SURB{FirstHop: block.ID{9}}
		order := rnd.Perm(len(parts))
		for n, i := range order {
			got, life, replies, err := a.Add(testNow, parts[i], []SURB{surb})
			if err != nil {
				t.Fatal(err)
			}
			if n < len(order)-1 {
				if got != nil {
					t.Fatalf("size %d: block complete after %d of %d parts", size, n+1, len(parts))
				}
				continue
			}
			if !bytes.Equal(got, blk) || life != 3600 || len(replies) != len(parts) {
				t.Fatalf("size %d: assembled %d bytes (equal %v), lifetime %d, %d reply blocks", size, len(got), bytes.Equal(got, blk), life, len(replies))
			}
		}
		if a.Pending() != 0 {
			t.Fatalf("%d assemblies left", a.Pending())
		}
	}
}

func TestAssemblerRefusesConflictsAndWrongIDs(t *testing.T) {
	testSeed(t)
	blk := bytes.Repeat([]byte{7}, 100)
	id := block.Sum(blk)
	var a Assembler
	if _, _, _, err := a.Add(testNow, Put{Lifetime: 1, ID: id, Total: 100, Offset: 0, Chunk: blk[:60]}, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := a.Add(testNow, Put{Lifetime: 1, ID: id, Total: 100, Offset: 50, Chunk: blk[50:]}, nil); !errors.Is(err, ErrPartConflict) {
		t.Fatalf("overlapping part: %v", err)
	}
	if _, _, _, err := a.Add(testNow, Put{Lifetime: 1, ID: block.ID{1}, Total: 100, Offset: 0, Chunk: blk}, nil); !errors.Is(err, ErrBlockID) {
		t.Fatalf("wrong ID: %v", err)
	}
	if _, _, _, err := a.Add(testNow, Put{Lifetime: 1, ID: id, Total: 100, Offset: 0, Chunk: blk[:60]}, nil); err != nil {
		t.Fatal(err)
	}
	// The rest after the timeout starts over instead of completing.
	got, _, _, err := a.Add(testNow.Add(AssemblyTimeout), Put{Lifetime: 1, ID: id, Total: 100, Offset: 60, Chunk: blk[60:]}, nil)
	if err != nil || got != nil {
		t.Fatalf("part after the timeout completed a stale block: %v", err)
	}
}
