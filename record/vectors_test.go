package record

import (
	"bytes"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/vectors"
)

var sentinels = []error{ErrTooLarge, ErrMalformed, ErrKind, ErrSignature, ErrWrongKey, ErrStale, ErrForked, ErrRevoked, ErrSlot, ErrName, ErrExpired, ErrNotYetValid, ErrNotFound, ErrMismatch, ErrMoved}

func errName(err error) string { return vectors.RuleName(err, sentinels...) }

func recordOut(r *Record) map[string]string {
	out := map[string]string{"kind": strconv.Itoa(int(r.Kind)), "slot": r.Slot().String()}
	switch r.Kind {
	case KindKeyLog:
		s, _ := r.KeyLog.State()
		out["address"] = identity.FormatAddress(s.Address)
		out["generation"] = strconv.Itoa(s.Generation)
		out["events"] = strconv.Itoa(s.Events)
		out["sign_key"] = hex.EncodeToString(s.SignKey[:])
		out["pubkey"] = s.Pubkey.String()
		out["head"] = hex.EncodeToString(s.Head[:])
		out["revoked"] = strconv.FormatBool(s.Revoked)
		if s.Moved {
			out["moved_to"] = identity.FormatAddress(s.MovedTo)
		}
	case KindDelegation:
		d := r.Delegation
		out["owner"] = identity.FormatAddress(d.Owner)
		out["seq"] = strconv.Itoa(int(d.Version.Seq))
		out["revoked"] = strconv.FormatBool(d.Version.Revoked)
		out["delegates"] = strconv.Itoa(len(d.Delegates))
	case KindName:
		n := r.Name
		out["name"] = n.Name
		out["address"] = identity.FormatAddress(n.Address)
		out["seq"] = strconv.Itoa(int(n.Version.Seq))
		out["revoked"] = strconv.FormatBool(n.Version.Revoked)
	}
	return out
}

func checkRecordVector(v vectors.Vector) (map[string]string, string) {
	param := func(k string) []byte { b, _ := hex.DecodeString(v.Params[k]); return b }
	switch v.Function {
	case "Normalise":
		n, err := Normalise(v.Input)
		if err != nil {
			return nil, errName(err)
		}
		return map[string]string{"name": n}, ""
	case "SafetyCode":
		a, b := param("a"), param("b")
		if len(a) != 32 || len(b) != 32 {
			return nil, "bad params"
		}
		return map[string]string{"code": SafetyCode(block.ID(a), block.ID(b))}, ""
	}
	b, err := hex.DecodeString(v.Input)
	if err != nil {
		return nil, "bad hex: " + err.Error()
	}
	switch v.Function {
	case "Parse":
		r, err := Parse(b)
		if err != nil {
			return nil, errName(err)
		}
		if !bytes.Equal(r.Encode(), b) {
			return nil, "re-encoding differs"
		}
		return recordOut(r), ""
	case "Supersedes":
		held, err := Parse(param("held"))
		if err != nil {
			return nil, "held: " + errName(err)
		}
		next, err := Parse(b)
		if err != nil {
			return nil, "next: " + errName(err)
		}
		if err := Supersedes(held, next); err != nil {
			return nil, errName(err)
		}
		return map[string]string{"keep": "next"}, ""
	case "CheckDelegation":
		r, err := Parse(b)
		if err != nil || r.Kind != KindDelegation {
			return nil, "not a delegation"
		}
		log, err := Parse(param("owner_log"))
		if err != nil {
			return nil, "owner_log: " + errName(err)
		}
		s, _ := log.KeyLog.State()
		now, _ := strconv.ParseInt(v.Params["now"], 10, 64)
		if err := r.Delegation.Check(s, time.Unix(now, 0)); err != nil {
			return nil, errName(err)
		}
		return map[string]string{"valid": "true"}, ""
	}
	return nil, "unknown function " + v.Function
}

// vectorWorld is a fixed cast for the vectors: alice rotates twice, bob
// is where she moves, carol's key log is another slot, a domain signs.
type vectorWorld struct {
	alice, bob, carol                     *owner
	v0, v1, v2, fork, revoked, moved, rev *Record
	d1, d2, d2b, d3b, drev, dOld          *Record
	name, nameRev                         *Record
}

func newVectorWorld(t testing.TB) *vectorWorld {
	w := &vectorWorld{}
	src := patternRand(0x11)
	w.alice, w.bob, w.carol = newOwner(t, src), newOwner(t, src), newOwner(t, src)
	w.v0 = w.alice.log
	w.alice.rotate(t, 1, src)
	w.v1 = w.alice.log
	branch := *w.alice
	w.alice.rotate(t, 2, src)
	w.v2 = w.alice.log
	branch.rotate(t, 3, src)
	w.fork = branch.log
	var err error
	if w.revoked, err = Revoke(w.v2, w.alice.next, t0.Add(4*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if w.moved, err = Move(w.v2, w.alice.next, w.bob.id, t0.Add(4*time.Hour)); err != nil {
		t.Fatal(err)
	}
	nb := uint64(t0.Unix())
	deleg := func(seq uint32, prev *Record, revoked bool, nodes ...block.ID) *Record {
		d := Delegation{Owner: w.alice.id.ID(), Delegates: nodes, Version: Version{Seq: seq, Revoked: revoked, NotBefore: nb, NotAfter: nb + 7*86400}}
		if prev != nil {
			d.Version.Prev = block.Sum(prev.Bytes())
		}
		r, err := SignDelegation(d, w.alice.id)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	n1, n2 := block.ID(vectors.Pattern(32, 0xa0)), block.ID(vectors.Pattern(32, 0xb0))
	w.d1 = deleg(1, nil, false, n1)
	w.d2 = deleg(2, w.d1, false, n1, n2)
	w.d2b = deleg(2, w.d1, false, n2)
	w.d3b = deleg(3, w.d2b, false, n1)
	w.drev = deleg(3, w.d2, true, n1, n2)
	old := Delegation{Owner: w.alice.id.ID(), Delegates: []block.ID{n1}, Version: Version{Seq: 1, NotBefore: nb, NotAfter: nb + 7*86400}}
	if w.dOld, err = SignDelegation(old, w.alice.gens[1]); err != nil {
		t.Fatal(err)
	}
	domain := KeySigner(ed25519Key(0xd0))
	nc := NameCert{Name: "alice@xn--bcher-kva.example", Address: w.alice.id.ID(), Version: Version{Seq: 1, NotBefore: nb, NotAfter: nb + 365*86400}}
	if w.name, err = SignName(nc, domain, w.alice.gens[0]); err != nil {
		t.Fatal(err)
	}
	nc.Version.Seq, nc.Version.Prev, nc.Version.Revoked = 2, block.Sum(w.name.Bytes()), true
	if w.nameRev, err = SignName(nc, domain, nil); err != nil {
		t.Fatal(err)
	}
	return w
}

func genRecordVectors() vectors.File {
	w := newVectorWorld(panicTB{})
	hx := hex.EncodeToString
	edit := func(r *Record, f func(b []byte) []byte) string { return hx(f(bytes.Clone(r.Bytes()))) }
	at := func(r *Record, i int, x byte) string {
		return edit(r, func(b []byte) []byte {
			if i < 0 {
				i += len(b)
			}
			b[i] ^= x
			return b
		})
	}
	s1, _ := w.v1.KeyLog.State()
	// The thief of generation 1's key signs a rotation with it.
	thief := Event{Type: EventRotate, Time: uint64(t0.Add(5 * time.Hour).Unix()), Next: w.carol.id.Public().Next, Pubkey: w.carol.id.Public().ID}
	copy(thief.Signer[:], w.alice.gens[1].VerifyKey())
	thief.Signature = signWith(privateOf(w.alice.gens[1]), &thief, s1.Events+1, s1.Head)
	// A rotation signed properly but after the revocation.
	sr, _ := w.revoked.KeyLog.State()
	after := Event{Type: EventRotate, Time: uint64(t0.Add(5 * time.Hour).Unix()), Next: sr.Next, Pubkey: sr.Pubkey}
	copy(after.Signer[:], w.alice.next.VerifyKey())
	after.Signature = w.alice.next.Sign(block.LabelRecord, after.message(sr.Events+1, sr.Head))
	s2, _ := w.v2.KeyLog.State()
	back := Event{Type: EventRevoke, Time: uint64(t0.Unix()), Signer: s2.SignKey}
	back.Signature = w.alice.id.Sign(block.LabelRecord, back.message(s2.Events+1, s2.Head))
	oversized := append(bytes.Clone(w.v2.Bytes()), make([]byte, block.MaxRecordSize+1-len(w.v2.Bytes()))...)
	notNormal := *w.name.Name
	notNormal.Name = "Alice@xn--bcher-kva.example"
	delegAt := recordPrefix + 32 + 32 // seq of a delegation
	sup := func(name string, held, next *Record, errText, note string) vectors.Vector {
		return vectors.Vector{Name: name, Function: "Supersedes", Input: hx(next.Bytes()), Params: map[string]string{"held": hx(held.Bytes())}, Error: errText, Note: note}
	}
	a, b := w.alice.id.ID(), w.bob.id.ID()
	vs := []vectors.Vector{
		{Name: "key_log_inception_only", Function: "Parse", Input: hx(w.v0.Bytes()), Note: "15.1: an identity with no events"},
		{Name: "key_log_two_rotations", Function: "Parse", Input: hx(w.v2.Bytes())},
		{Name: "key_log_revoked_by_next_key", Function: "Parse", Input: hx(w.revoked.Bytes())},
		{Name: "key_log_moved", Function: "Parse", Input: hx(w.moved.Bytes())},
		{Name: "delegation", Function: "Parse", Input: hx(w.d2.Bytes()), Note: "15.2"},
		{Name: "name_certificate", Function: "Parse", Input: hx(w.name.Bytes()), Note: "15.3"},
		{Name: "name_certificate_revoked_by_domain_alone", Function: "Parse", Input: hx(w.nameRev.Bytes())},

		{Name: "record_over_4KiB", Function: "Parse", Input: hx(oversized), Error: "too large", Note: "a record over MaxRecordSize MUST be rejected"},
		{Name: "key_log_rotation_by_the_current_key", Function: "Parse", Input: hx(withEvent(w.v1, thief)), Error: "signed by the wrong key", Note: "a thief holding only the current key cannot rotate"},
		{Name: "key_log_bad_signature", Function: "Parse", Input: at(w.v2, -1, 1), Error: "bad signature"},
		{Name: "key_log_inception_bad_signature", Function: "Parse", Input: at(w.v2, recordPrefix+block.PubkeySize-1, 1), Error: "bad signature", Note: "the inception block MUST verify"},
		{Name: "key_log_event_after_revocation", Function: "Parse", Input: hx(withEvent(w.revoked, after)), Error: "revoked", Note: "nothing follows a revoke, whatever signs it"},
		{Name: "key_log_event_dated_back", Function: "Parse", Input: hx(withEvent(w.v2, back)), Error: "malformed"},
		{Name: "key_log_unknown_event_type", Function: "Parse", Input: at(w.v2, keyLogFixed, 0x0f), Error: "malformed"},
		{Name: "key_log_count_too_high", Function: "Parse", Input: at(w.v2, keyLogFixed-1, 0x10), Error: "malformed", Note: "count at most MaxKeyEvents"},
		{Name: "key_log_trailing_byte", Function: "Parse", Input: edit(w.v2, func(b []byte) []byte { return append(b, 0) }), Error: "malformed"},
		{Name: "move_bad_co_signature", Function: "Parse", Input: at(w.moved, -1, 1), Error: "bad signature", Note: "the new identity's signature MUST verify"},
		{Name: "record_unknown_kind", Function: "Parse", Input: at(w.v2, block.HeaderSize, 0x0c), Error: "unknown kind"},
		{Name: "record_with_deletion_flag", Function: "Parse", Input: at(w.v2, 2, 1), Error: "malformed", Note: "a record carries no deletion hash"},
		{Name: "delegation_bad_signature", Function: "Parse", Input: at(w.d2, -1, 1), Error: "bad signature"},
		{Name: "delegation_small_order_signer", Function: "Parse", Input: edit(w.d1, func(b []byte) []byte {
			copy(b[recordPrefix+32:], make([]byte, 32))
			b[recordPrefix+32] = 1 // the identity point
			sig := b[len(b)-64:]
			clear(sig)
			sig[0] = 1 // R = identity, S = 0: ed25519.Verify accepts it under that key
			return b
		}), Error: "bad signature", Note: "a key of small order signs nothing"},
		{Name: "delegation_seq_1_with_prev", Function: "Parse", Input: at(w.d2, delegAt+3, 3), Error: "malformed", Note: "prev is zero exactly for seq 1"},
		{Name: "delegation_longer_than_30_days", Function: "Parse", Input: at(w.d1, delegAt+4+32+1+8+3, 0x80), Error: "malformed", Note: "not_after - not_before at most MaxDelegation"},
		{Name: "delegation_delegates_unsorted", Function: "Parse", Input: edit(w.d2, func(b []byte) []byte {
			i := delegAt + 4 + 32 + 1 + 16 + 1
			t := bytes.Clone(b[i : i+32])
			copy(b[i:], b[i+32:i+64])
			copy(b[i+32:], t)
			return b
		}), Error: "malformed", Note: "delegates strictly ascending"},
		{Name: "name_not_normalised", Function: "Parse", Input: hx(notNormal.Encode()), Error: "invalid name", Note: "a name not in normal form MUST be rejected"},
		{Name: "name_user_signature_missing", Function: "Parse", Input: edit(w.name, func(b []byte) []byte { clear(b[len(b)-64:]); return b }), Error: "bad signature", Note: "a binding needs the address's signature"},

		sup("key_log_extension", w.v1, w.v2, "", "15.4: a strict extension replaces the held log"),
		sup("key_log_same_bytes", w.v2, w.v2, "", "the same record again refreshes it"),
		sup("key_log_replayed_older", w.v2, w.v1, "stale", "a replayed older record"),
		sup("key_log_forked", w.v2, w.fork, "forked", "a forked chain"),
		sup("key_log_after_revocation", w.revoked, w.fork, "revoked", "a record after a revocation"),
		sup("key_log_older_after_revocation", w.revoked, w.v1, "revoked", "whatever its sequence"),
		sup("key_log_other_identity", w.v2, w.carol.log, "another slot", ""),
		sup("delegation_next_version", w.d1, w.d2, "", ""),
		sup("delegation_skips_a_version", w.d1, w.drev, "", "a holder that missed a version takes a later one"),
		sup("delegation_replayed_older", w.d2, w.d1, "stale", ""),
		sup("delegation_same_seq_other_bytes", w.d2, w.d2b, "forked", ""),
		sup("delegation_next_seq_wrong_link", w.d2, w.d3b, "forked", "prev MUST be the block_id of the replaced version"),
		sup("delegation_after_revocation", w.drev, w.d1, "revoked", ""),
		sup("name_revocation", w.name, w.nameRev, "", ""),

		{Name: "delegation_current_key", Function: "CheckDelegation", Input: hx(w.d2.Bytes()), Params: map[string]string{"owner_log": hx(w.v2.Bytes()), "now": strconv.FormatInt(t0.Add(3*time.Hour).Unix(), 10)}, Note: "15.2: the owner's current key signed it"},
		{Name: "delegation_expired", Function: "CheckDelegation", Input: hx(w.d2.Bytes()), Params: map[string]string{"owner_log": hx(w.v2.Bytes()), "now": strconv.FormatInt(t0.Add(8*24*time.Hour).Unix(), 10)}, Error: "expired"},
		{Name: "delegation_signed_before_a_rotation", Function: "CheckDelegation", Input: hx(w.dOld.Bytes()), Params: map[string]string{"owner_log": hx(w.v2.Bytes()), "now": strconv.FormatInt(t0.Add(3*time.Hour).Unix(), 10)}, Error: "signed by the wrong key", Note: "a record signed by the wrong key: not the owner's current one"},
		{Name: "delegation_owner_revoked", Function: "CheckDelegation", Input: hx(w.d2.Bytes()), Params: map[string]string{"owner_log": hx(w.revoked.Bytes()), "now": strconv.FormatInt(t0.Add(3*time.Hour).Unix(), 10)}, Error: "revoked"},

		{Name: "name_mixed_case", Function: "Normalise", Input: "Alice.Smith@Example.COM.", Note: "15.3 normal form"},
		{Name: "name_unicode_domain", Function: "Normalise", Input: "bob@Bücher.example"},
		{Name: "name_eszett_nontransitional", Function: "Normalise", Input: "x@faß.de"},
		{Name: "name_fullwidth_domain", Function: "Normalise", Input: "x@ｅｘａｍｐｌｅ.com"},
		{Name: "name_unicode_local_part", Function: "Normalise", Input: "Ünï@example.com", Error: "invalid name"},
		{Name: "name_address_literal", Function: "Normalise", Input: "x@[192.0.2.1]", Error: "invalid name"},
		{Name: "name_ip_address", Function: "Normalise", Input: "x@192.0.2.1", Error: "invalid name"},
		{Name: "name_single_label", Function: "Normalise", Input: "x@localhost", Error: "invalid name"},
		{Name: "name_double_dot", Function: "Normalise", Input: "a..b@example.com", Error: "invalid name"},
		{Name: "name_two_ats", Function: "Normalise", Input: "a@b@example.com", Error: "invalid name"},
		{Name: "name_space", Function: "Normalise", Input: "a b@example.com", Error: "invalid name"},
		{Name: "name_too_long", Function: "Normalise", Input: strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61) + ".com", Error: "invalid name", Note: "at most 254 bytes"},

		{Name: "safety_code", Function: "SafetyCode", Params: map[string]string{"a": hx(a[:]), "b": hx(b[:])}, Note: "15.6"},
		{Name: "safety_code_swapped", Function: "SafetyCode", Params: map[string]string{"a": hx(b[:]), "b": hx(a[:])}, Note: "the same code from either side"},
		{Name: "safety_code_fixed_ids", Function: "SafetyCode", Params: map[string]string{"a": strings.Repeat("00", 32), "b": strings.Repeat("ff", 32)}},
	}
	return vectors.File{Description: "Records (docs/PROTOCOL.md section 15): key logs, certificates, the Supersedes rule, names, safety codes. Key material comes from fixed patterns, times from 2026-01-01.", Vectors: vs}
}

func TestRecordVectors(t *testing.T) {
	vectors.Check(t, "record.json", genRecordVectors, checkRecordVector)
}

// panicTB lets the vector generator share the test fixtures outside a
// test: any failure is a bug in the generator.
type panicTB struct{ testing.TB }

func (panicTB) Helper()                   {}
func (panicTB) Fatal(args ...any)         { panic(args) }
func (panicTB) Fatalf(f string, a ...any) { panic(f) }
