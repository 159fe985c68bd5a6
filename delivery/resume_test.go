package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/flowmail/flowmail/internal/atomicfile"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
)

// twoGroupMail is a mail from alice to bob whose body takes two groups.
func twoGroupMail(t *testing.T) (alice, bob *identity.Identity, msg []byte) {
	t.Helper()
	alice, bob = testIdentity(t, seedAlice, 4), testIdentity(t, seedBob, 4)
	msg = composeTo(t, alice, []*identity.Identity{bob}, "two groups", "see attached",
		mail.Attachment{Name: "big.bin", Data: randomBytes(17<<20, 21)}) // base64 22.7 MB, compressed (spec 9.3) 18 MB: more than a group
	return alice, bob, msg
}

func sendIn(t *testing.T, sender *identity.Identity, msg []byte, rcpts ...*identity.Identity) mail.BuildInput {
	return mail.BuildInput{Sender: sender, Recipients: publicKeys(rcpts...), Message: bytes.NewReader(msg), Size: int64(len(msg)), Now: testNow}
}

// TestSendResumesWithoutStoringAgain: a Send that loses the network part
// way through, run again with the same state file, stores each data block
// once in all, builds the same mail, and it is delivered.
func TestSendResumesWithoutStoringAgain(t *testing.T) {
	if testing.Short() {
		t.Skip("sends a mail of two groups")
	}
	c := testCodec(t)
	net := newMemNet(testNow)
	alice, bob, msg := twoGroupMail(t)
	state := filepath.Join(t.TempDir(), "send.state")

	net.setPutLimit(100) // the first group (87 blocks) and part of the second
	_, err := Send(context.Background(), net, c, sendIn(t, alice, msg, bob), SendOptions{State: state})
	if err == nil || !strings.Contains(err.Error(), "network gone") {
		t.Fatalf("first Send: %v, want the network's error", err)
	}
	net.setPutLimit(0)
	var grinds int
	sent, err := Send(context.Background(), net, c, sendIn(t, alice, msg, bob), SendOptions{State: state, Progress: func(p mail.Progress) {
		if p.Phase == mail.PhaseGrind && p.Done == 0 && p.PoW.Attempts == 0 {
			grinds++
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if sent.Layout.Groups != 2 || sent.Reused < 87 || grinds != 1 {
		t.Fatalf("sent %+v after %d grinds; want 2 groups and the first group's blocks reused", sent, grinds)
	}
	for id, n := range net.putsOf {
		if n != 1 {
			t.Fatalf("block %s stored %d times", id.Short(), n)
		}
	}
	if net.putCount() != sent.Layout.Shards()+1 {
		t.Fatalf("%d Puts for %d data blocks and an index block", net.putCount(), sent.Layout.Shards())
	}
	// A third run finds everything done and stores nothing.
	if _, err := Send(context.Background(), net, c, sendIn(t, alice, msg, bob), SendOptions{State: state}); err != nil || net.putCount() != sent.Layout.Shards()+1 {
		t.Fatalf("third Send: %v, %d Puts", err, net.putCount())
	}
	rep := newMailbox(t, bob).fetch(t, c, net, FetchOptions{})
	if len(rep.Delivered) != 1 || rep.Delivered[0].MessageID != sent.MessageID {
		t.Fatalf("report %+v", rep)
	}
	if got := readMaildirFile(t, rep.Delivered[0]); !bytes.Equal(got, mailbox.ToLF(msg)) {
		t.Fatal("delivered mail differs")
	}
}

// TestSendResumesAfterGrinding: interrupted while storing index blocks,
// a Send resumes without building or grinding again.
func TestSendResumesAfterGrinding(t *testing.T) {
	c := testCodec(t)
	net := newMemNet(testNow)
	alice, bob, carol := testIdentity(t, seedAlice, 4), testIdentity(t, seedBob, 8), testIdentity(t, seedCarol, 8)
	msg := composeTo(t, alice, []*identity.Identity{bob, carol}, "s", "t")
	state := filepath.Join(t.TempDir(), "send.state")
	var data int
	probe, err := c.Build(context.Background(), sendIn(t, alice, msg, bob, carol), mail.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data = len(probe.Data)
	probe.Release()
	net.setPutLimit(data + 1) // every data block and one index block
	if _, err := Send(context.Background(), net, c, sendIn(t, alice, msg, bob, carol), SendOptions{State: state}); err == nil {
		t.Fatal("first Send succeeded")
	}
	net.setPutLimit(0)
	var phases []mail.Phase
	sent, err := Send(context.Background(), net, c, sendIn(t, alice, msg, bob, carol), SendOptions{State: state, Progress: func(p mail.Progress) { phases = append(phases, p.Phase) }})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range phases {
		if p == mail.PhaseGrind {
			t.Fatal("the resumed Send ground again")
		}
	}
	if net.putCount() != data+2 {
		t.Fatalf("%d Puts, want %d data blocks and 2 index blocks once each", net.putCount(), data)
	}
	for i, r := range []*identity.Identity{bob, carol} {
		rep := newMailbox(t, r).fetch(t, c, net, FetchOptions{Keep: true})
		if len(rep.Delivered) != 1 || rep.Delivered[0].Index != sent.Index[i] {
			t.Fatalf("recipient %d: %+v", i, rep)
		}
	}
}

// TestSendStateRefusesWhatItCannotUse: a damaged state file, or one of
// another mail, is a clear error, and the file is left as it was.
func TestSendStateRefusesWhatItCannotUse(t *testing.T) {
	c := testCodec(t)
	net := newMemNet(testNow)
	alice, bob, carol := testIdentity(t, seedAlice, 4), testIdentity(t, seedBob, 4), testIdentity(t, seedCarol, 4)
	msg := composeTo(t, alice, []*identity.Identity{bob}, "s", "t")
	dir := t.TempDir()
	state := filepath.Join(dir, "send.state")
	if _, err := Send(context.Background(), net, c, sendIn(t, alice, msg, bob), SendOptions{State: state}); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		content []byte
		in      mail.BuildInput
		says    string
	}{
		{"cut short", good[:len(good)/2], sendIn(t, alice, msg, bob), "is damaged"},
		{"not JSON", []byte("\x00\x01garbage"), sendIn(t, alice, msg, bob), "is damaged"},
		{"bad seed", bytes.Replace(good, []byte(`"seed":"`), []byte(`"seed":"zz`), 1), sendIn(t, alice, msg, bob), "bad seed"},
		{"other version", bytes.Replace(good, []byte(`"version":1`), []byte(`"version":9`), 1), sendIn(t, alice, msg, bob), "version 9"},
		{"another mail", good, sendIn(t, alice, msg, carol), "belongs to another mail"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(state, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Send(context.Background(), net, c, tc.in, SendOptions{State: state})
			if !errors.Is(err, ErrSendState) || !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), state) {
				t.Fatalf("err = %v, want ErrSendState naming the file and saying %q", err, tc.says)
			}
			if after, _ := os.ReadFile(state); !bytes.Equal(after, tc.content) {
				t.Fatal("the unusable state file was changed")
			}
		})
	}
}

// TestFetchKeepsTheShardsItHas: a mail whose shards are partly lost is
// deferred, and the shards that did arrive are kept; once the rest come
// back, the next fetch gets only those. A cached shard damaged on disk is
// fetched again.
func TestFetchKeepsTheShardsItHas(t *testing.T) {
	c := testCodec(t)
	net := newMemNet(testNow)
	alice, bob := testIdentity(t, seedAlice, 4), testIdentity(t, seedBob, 4)
	msg := composeTo(t, alice, []*identity.Identity{bob}, "big", "x", mail.Attachment{Name: "a.bin", Data: randomBytes(2<<20, 9)})
	b := buildAndSend(t, c, net, alice, msg, bob)
	defer b.Release()
	l := b.Layout.Last
	lost := spread(len(b.Data), l.Parity+1) // one too many
	for _, i := range lost {
		net.setDrop(b.Data[i].ID, true)
	}
	cache := filepath.Join(t.TempDir(), "shards")
	mb := newMailbox(t, bob)
	rep := mb.fetch(t, c, net, FetchOptions{ShardCache: cache})
	if len(rep.Deferred) != 1 {
		t.Fatalf("report %+v", rep)
	}
	files, _ := os.ReadDir(cacheDir(cache, b.Index[0].ID))
	if len(files) != l.Data-1 {
		t.Fatalf("%d shards kept, want the %d that arrived", len(files), l.Data-1)
	}
	// Damage one kept shard, as a crash or a disk might.
	damaged := filepath.Join(cacheDir(cache, b.Index[0].ID), files[0].Name())
	if err := os.WriteFile(damaged, []byte("torn"), 0o600); err != nil {
		t.Fatal(err)
	}
	damagedID, _ := block.ParseHexID(files[0].Name())
	for _, i := range lost {
		net.setDrop(b.Data[i].ID, false)
	}
	before := map[block.ID]int{}
	for _, d := range b.Data {
		before[d.ID] = net.getCount(d.ID)
	}
	rep = mb.fetch(t, c, net, FetchOptions{ShardCache: cache})
	if len(rep.Delivered) != 1 {
		t.Fatalf("retry: %+v", rep)
	}
	if got := readMaildirFile(t, rep.Delivered[0]); !bytes.Equal(got, mailbox.ToLF(msg)) {
		t.Fatal("delivered mail differs")
	}
	fetched := 0
	for _, d := range b.Data {
		if n := net.getCount(d.ID) - before[d.ID]; n > 0 {
			fetched++
			if d.ID != damagedID && !net.drop[d.ID] && before[d.ID] > 0 && !isLost(b, lost, d.ID) {
				t.Fatalf("shard %s arrived the first time and was fetched again", d.ID.Short())
			}
		}
	}
	if fetched != 2 {
		t.Fatalf("the retry fetched %d shards, want the one missing and the damaged one", fetched)
	}
	if _, err := os.Stat(cacheDir(cache, b.Index[0].ID)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the shards of a delivered mail are still kept")
	}
}

func isLost(b *mail.Built, lost []int, id block.ID) bool {
	for _, i := range lost {
		if b.Data[i].ID == id {
			return true
		}
	}
	return false
}

// FuzzSendState: a send state file of any bytes is taken or refused with
// ErrSendState, never a panic; one taken is written back as it reads.
func FuzzSendState(f *testing.F) {
	alice, bob := testIdentity(f, seedAlice, 0), testIdentity(f, seedBob, 0)
	in := mail.BuildInput{Sender: alice, Recipients: publicKeys(bob), Size: 100, Now: testNow, Lifetime: time.Hour}
	good, err := openSendState("", in)
	if err != nil {
		f.Fatal(err)
	}
	good.markStored(block.ID{1})
	b, _ := json.Marshal(good.j)
	f.Add(b)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"index":[{"block":"00"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := &sendState{path: filepath.Join(t.TempDir(), "state"), done: map[block.ID]bool{}}
		s.j = good.j
		s.j.Stored, s.j.Index = nil, nil
		st, err := s.resume(b)
		if err != nil {
			if !errors.Is(err, ErrSendState) {
				t.Fatalf("error %v is not ErrSendState", err)
			}
			return
		}
		if err := st.save(); err != nil {
			t.Fatal(err)
		}
		again, err := atomicfile.ReadBounded(st.path, maxSendState)
		if err != nil {
			t.Fatal(err)
		}
		s2 := &sendState{path: st.path, done: map[block.ID]bool{}, j: s.j}
		if _, err := s2.resume(again); err != nil {
			t.Fatalf("a state written back does not read: %v", err)
		}
	})
}

// TestSendReportsProgressInBytes: Send's store progress climbs block by
// block in message bytes, reaches the message size once, and only then
// does grinding begin.
func TestSendReportsProgressInBytes(t *testing.T) {
	c := testCodec(t)
	net := newMemNet(testNow)
	alice, bob := testIdentity(t, seedAlice, 4), testIdentity(t, seedBob, 4)
	msg := composeTo(t, alice, []*identity.Identity{bob}, "big", "x", mail.Attachment{Name: "a.bin", Data: randomBytes(1<<20, 3)})
	var got []mail.Progress
	if _, err := Send(context.Background(), net, c, sendIn(t, alice, msg, bob), SendOptions{Progress: func(p mail.Progress) { got = append(got, p) }}); err != nil {
		t.Fatal(err)
	}
	var last int64
	stores, full, grinding := 0, 0, false
	for _, p := range got {
		switch p.Phase {
		case mail.PhaseStore:
			if grinding || p.Done < last || p.Total != int64(len(msg)) {
				t.Fatalf("store report %+v after %d bytes (grinding %v)", p, last, grinding)
			}
			last = p.Done
			stores++
			if p.Done == p.Total {
				full++
			}
		case mail.PhaseGrind:
			if full != 1 {
				t.Fatalf("grinding began with the store at %d of %d", last, len(msg))
			}
			grinding = true
		}
	}
	if stores < 40 || full != 1 || !grinding {
		t.Fatalf("%d store reports, %d of them full; grinding %v", stores, full, grinding)
	}
}
