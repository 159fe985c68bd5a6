package blockstore

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/recordtest"
	"github.com/flowmail/flowmail/internal/vectors"
	"github.com/flowmail/flowmail/record"
)

// storeSentinels name a refusal by its most precise rule: a record's
// reason before the store's kind of refusal.
var storeSentinels = []error{
	record.ErrStale, record.ErrForked, record.ErrRevoked, record.ErrWrongKey, record.ErrTooLarge, record.ErrSignature,
	ErrNotFound, ErrInvalid, ErrRefused, ErrForbidden, ErrDeleted, ErrFull, ErrClosed, ErrCorrupt,
}

// storeErrName names the storage rule err breaks: its sentinel's text.
func storeErrName(err error) string {
	return vectors.RuleName(err, storeSentinels...)
}

func genStoreVectors() vectors.File {
	fx := newFixtures(20)
	data, pre := fx.data(48)
	plain := block.Data{Payload: []byte("no deletion hash")}.Encode()
	var seed [identity.SeedSize]byte
	seed[0] = 1
	id, err := identity.FromSeed(seed, 8, time.Unix(1_800_000_000, 0))
	if err != nil {
		panic(err)
	}
	pub := id.Public().Block
	hx := hex.EncodeToString
	p := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	maxLife := strconv.Itoa(int(block.MaxLifetime / time.Second))
	a, err := recordtest.Load()
	if err != nil {
		panic(err)
	}
	over := func(name string, held, next []byte, errText, note string) vectors.Vector {
		return vectors.Vector{Name: name, Function: "PutOver", Input: hx(next), Params: p("held", hx(held), "lifetime_s", "3600"), Error: errText, Note: note}
	}
	vs := []vectors.Vector{
		{Name: "put_data", Function: "Put", Input: hx(data), Params: p("lifetime_s", "3600")},
		{Name: "put_pubkey", Function: "Put", Input: hx(pub), Params: p("lifetime_s", maxLife)},
		{Name: "put_lifetime_capped", Function: "Put", Input: hx(data), Params: p("lifetime_s", strconv.Itoa(int(block.MaxLifetime/time.Second)+1)), Note: "a store keeps a block at most MaxLifetime (the wire refuses more)"},
		{Name: "put_lifetime_zero", Function: "Put", Input: hx(data), Params: p("lifetime_s", "0"), Error: "invalid block", Note: "a lifetime is 1 to MaxLifetime seconds"},
		{Name: "put_bad_signature", Function: "Put", Input: hx(flipLast(pub)), Params: p("lifetime_s", "60"), Error: "invalid block", Note: "a node MUST verify a pubkey block's signature before storing it"},
		{Name: "put_unknown_type", Function: "Put", Input: "01090068656c6c6f", Params: p("lifetime_s", "60"), Error: "invalid block"},
		{Name: "get_before_expiry", Function: "GetAfter", Input: hx(data), Params: p("lifetime_s", "60", "after_s", "59")},
		{Name: "get_at_expiry", Function: "GetAfter", Input: hx(data), Params: p("lifetime_s", "60", "after_s", "60"), Error: "block not found", Note: "a node MUST NOT return an expired block"},
		{Name: "delete_with_preimage", Function: "Delete", Input: hx(data), Params: p("preimage", hx(pre[:]))},
		{Name: "delete_wrong_preimage", Function: "Delete", Input: hx(data), Params: p("preimage", hx(flipLast(pre[:]))), Error: "wrong deletion preimage", Note: "DELETE succeeds only with the preimage of the deletion hash"},
		{Name: "delete_hash_as_preimage", Function: "Delete", Input: hx(data), Params: p("preimage", hx(data[block.HeaderSize:block.HeaderSizeWithDeletion])), Error: "wrong deletion preimage"},
		{Name: "delete_without_deletion_hash", Function: "Delete", Input: hx(plain), Params: p("preimage", hx(pre[:])), Error: "wrong deletion preimage"},
		{Name: "delete_pubkey", Function: "Delete", Input: hx(pub), Params: p("preimage", hx(pre[:])), Error: "wrong deletion preimage"},
		{Name: "restore_before_expiry", Function: "PutAfterDelete", Input: hx(data), Params: p("preimage", hx(pre[:]), "lifetime_s", "3600", "after_s", "3599"), Error: "block was deleted", Note: "a node that deleted X MUST refuse X until X's expiry would have passed"},
		{Name: "restore_after_expiry", Function: "PutAfterDelete", Input: hx(data), Params: p("preimage", hx(pre[:]), "lifetime_s", "3600", "after_s", "3600")},

		{Name: "put_record", Function: "Put", Input: hx(a.V2), Params: p("lifetime_s", "3600"), Note: "15.4: a record is kept at its slot (the id), not at its block_id"},
		{Name: "get_record_by_block_id", Function: "GetByBlockID", Input: hx(a.V2), Params: p("lifetime_s", "3600"), Error: "block not found", Note: "a node never answers for a record's block_id"},
		{Name: "put_record_wrong_key", Function: "Put", Input: hx(a.WrongKey), Params: p("lifetime_s", "3600"), Error: "signed by the wrong key", Note: "a node MUST verify a record before storing it"},
		{Name: "put_record_over_4KiB", Function: "Put", Input: hx(a.TooLarge), Params: p("lifetime_s", "3600"), Error: "too large"},
		{Name: "put_record_event_after_revocation", Function: "Put", Input: hx(a.AfterRevocation), Params: p("lifetime_s", "3600"), Error: "revoked"},
		over("put_record_newer", a.V1, a.V2, "", "a newer version replaces the held one"),
		over("put_record_same", a.V2, a.V2, "", "the same record again extends its expiry"),
		over("put_record_stale", a.V2, a.V1, "stale", "a replayed older record is refused"),
		over("put_record_forked", a.V2, a.Fork, "forked", "a record that does not extend the held history is refused"),
		over("put_record_after_revocation", a.Revoked, a.Fork, "revoked", "a slot that holds a revocation refuses every later record"),
		over("put_record_older_after_revocation", a.Revoked, a.V1, "revoked", "whatever its sequence"),
		over("put_record_after_move", a.Moved, a.Revoked, "revoked", "a move ends the slot too"),
	}
	return vectors.File{Description: "Storage rules (docs/PROTOCOL.md sections 5 and 15.4), run against a store on a fixed clock. Times in seconds. PutOver stores params.held, then the input half an hour later.", Vectors: vs}
}

func flipLast(b []byte) []byte {
	b = append([]byte(nil), b...)
	b[len(b)-1] ^= 1
	return b
}

func seconds(s string) (time.Duration, error) {
	n, err := strconv.Atoi(s)
	return time.Duration(n) * time.Second, err
}

// checkStoreVector runs one vector against a fresh store. Failures of the
// test itself come back as "unexpected: ..." names, which match no vector.
func checkStoreVector(ctx context.Context, open func(Config) (Store, error), v vectors.Vector) (map[string]string, string) {
	b, err := hex.DecodeString(v.Input)
	if err != nil {
		return nil, "unexpected: input: " + err.Error()
	}
	clock := newFakeClock(time.Unix(1_800_000_000, 0))
	s, err := open(Config{Clock: clock})
	if err != nil {
		return nil, "unexpected: " + err.Error()
	}
	defer s.Close()
	lifetime, _ := seconds(v.Params["lifetime_s"])
	after, _ := seconds(v.Params["after_s"])
	var preimage [32]byte
	if p, ok := v.Params["preimage"]; ok {
		if pb, err := hex.DecodeString(p); err != nil || len(pb) != 32 {
			return nil, fmt.Sprintf("unexpected: preimage %q", p)
		} else {
			copy(preimage[:], pb)
		}
	}
	out := func(id block.ID) map[string]string {
		m, err := s.Stat(ctx, id)
		if err != nil {
			return map[string]string{"id": id.String()}
		}
		return map[string]string{"id": id.String(), "remaining_s": fmt.Sprint(int(m.Remaining(clock.Now()) / time.Second))}
	}
	switch v.Function {
	case "Put":
		id, err := s.Put(ctx, b, lifetime, PutOptions{})
		if err != nil {
			return nil, storeErrName(err)
		}
		return out(id), ""
	case "PutOver":
		held, err := hex.DecodeString(v.Params["held"])
		if err != nil {
			return nil, "unexpected: held: " + err.Error()
		}
		if _, err := s.Put(ctx, held, lifetime, PutOptions{}); err != nil {
			return nil, "unexpected: storing the held record: " + err.Error()
		}
		clock.Advance(time.Hour / 2)
		id, err := s.Put(ctx, b, lifetime, PutOptions{})
		if err != nil {
			return nil, storeErrName(err)
		}
		return out(id), ""
	case "GetByBlockID":
		if _, err := s.Put(ctx, b, lifetime, PutOptions{}); err != nil {
			return nil, storeErrName(err)
		}
		if _, _, err := s.Get(ctx, block.Sum(b)); err != nil {
			return nil, storeErrName(err)
		}
		return out(block.Sum(b)), ""
	case "GetAfter":
		id, err := s.Put(ctx, b, lifetime, PutOptions{})
		if err != nil {
			return nil, storeErrName(err)
		}
		clock.Advance(after)
		if _, _, err := s.Get(ctx, id); err != nil {
			return nil, storeErrName(err)
		}
		return out(id), ""
	case "Delete", "PutAfterDelete":
		if lifetime == 0 {
			lifetime = time.Hour
		}
		id, err := s.Put(ctx, b, lifetime, PutOptions{})
		if err != nil {
			return nil, "unexpected: storing the block to delete: " + err.Error()
		}
		if err := s.Delete(ctx, id, preimage); err != nil {
			return nil, storeErrName(err)
		}
		if v.Function == "Delete" {
			return map[string]string{"id": id.String()}, ""
		}
		clock.Advance(after)
		if _, err := s.Put(ctx, b, lifetime, PutOptions{}); err != nil {
			return nil, storeErrName(err)
		}
		return out(id), ""
	}
	return nil, fmt.Sprintf("unexpected: unknown function %q", v.Function)
}

func TestStoreVectors(t *testing.T) {
	dir := t.TempDir()
	stores := map[string]func(Config) (Store, error){
		"memory": func(cfg Config) (Store, error) { return NewMemory(cfg), nil },
		"badger": func(cfg Config) (Store, error) {
			d, err := os.MkdirTemp(dir, "vector")
			if err != nil {
				return nil, err
			}
			return OpenBadger(d, cfg)
		},
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			vectors.Check(t, "blockstore_storage.json", genStoreVectors, func(v vectors.Vector) (map[string]string, string) {
				return checkStoreVector(t.Context(), open, v)
			})
		})
	}
}
