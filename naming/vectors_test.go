package naming

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/vectors"
	"github.com/flowmail/flowmail/record"
)

var sentinels = []error{ErrNoRecord, ErrConflict, ErrMalformed, ErrVersion, ErrRequest, ErrCarried, record.ErrName}

func TestTXTVectors(t *testing.T) {
	vectors.Check(t, "naming.json", txtVectors, checkTXTVector)
}

func checkTXTVector(v vectors.Vector) (map[string]string, string) {
	var r *Record
	var err error
	switch v.Function {
	case "ParseRecord":
		r, err = ParseRecord(v.Input)
	case "SelectRecord":
		r, err = SelectRecord(strings.Split(v.Input, "\n"))
	case "NameSlot":
		name, err := record.Normalise(v.Input)
		if err != nil {
			return nil, vectors.RuleName(err, sentinels...)
		}
		k, err := ParseKey(v.Params["key"])
		if err != nil {
			return nil, vectors.RuleName(err, sentinels...)
		}
		return map[string]string{"name": name, "slot": record.NameSlot(name, k).String()}, ""
	case "DecodeRequest":
		b, err := hex.DecodeString(v.Input)
		if err != nil {
			return nil, "bad hex"
		}
		req, err := DecodeRequest(b)
		if err != nil {
			return nil, vectors.RuleName(err, sentinels...)
		}
		n := req.Cert
		return map[string]string{"name": n.Name, "address": identity.FormatAddress(n.Address), "domain_key": FormatKey(n.DomainKey),
			"seq": strconv.Itoa(int(n.Version.Seq)), "not_after": strconv.FormatUint(n.Version.NotAfter, 10)}, ""
	case "CarriedField":
		b, err := hex.DecodeString(v.Input)
		if err != nil {
			return nil, "bad hex"
		}
		return map[string]string{"field": CarriedField(b)}, ""
	case "ParseCarried":
		rec, err := ParseCarried(v.Input)
		if err != nil {
			return nil, vectors.RuleName(err, sentinels...)
		}
		n := rec.Name
		return map[string]string{"name": n.Name, "address": identity.FormatAddress(n.Address), "domain_key": FormatKey(n.DomainKey),
			"seq": strconv.Itoa(int(n.Version.Seq))}, ""
	default:
		return nil, "unknown function " + v.Function
	}
	if err != nil {
		return nil, vectors.RuleName(err, sentinels...)
	}
	keys := make([]string, len(r.Keys))
	for i, k := range r.Keys {
		keys[i] = FormatKey(k)
	}
	out := map[string]string{"keys": strings.Join(keys, " "), "text": r.Text()}
	if !r.Server.IsZero() {
		out["srv"] = identity.FormatAddress(r.Server)
	}
	if r.At != "" {
		out["at"] = r.At
	}
	return out, ""
}

func txtVectors() vectors.File {
	a, b := FormatKey(keyA), FormatKey(keyB)
	srv := identity.FormatAddress(block.ID(vectors.Pattern(32, 0x5e)))
	v := func(name, fn, in, errName, note string) vectors.Vector {
		return vectors.Vector{Name: name, Function: fn, Input: in, Error: errName, Note: note}
	}
	const (
		malformed = "malformed flowmail record"
		version   = "unknown flowmail record version"
	)
	id, _, err := identity.New(8, t0, bytes.NewReader(vectors.Pattern(4096, 0x11)))
	if err != nil {
		panic(err)
	}
	dk := ed25519.NewKeyFromSeed(vectors.Pattern(ed25519.SeedSize, 0xd0))
	req, err := NewRequest("alice@example.com", id.ID(), Key(dk.Public().(ed25519.PublicKey)), id,
		record.Version{Seq: 1, NotBefore: uint64(t0.Unix()), NotAfter: uint64(t0.Add(365 * 24 * time.Hour).Unix())})
	if err != nil {
		panic(err)
	}
	rq := req.Encode()
	cert, err := req.Complete(dk)
	if err != nil {
		panic(err)
	}
	field := CarriedField(cert.Bytes())
	value := strings.TrimPrefix(field, CertHeader+":")
	bad := bytes.Clone(rq)
	bad[len(bad)-1] ^= 1
	return vectors.File{
		Description: "Domain records at _flowmail.<domain> (docs/PROTOCOL.md 19.1), name slots (19.3), name requests (19.6) and carried certificates (19.8). Keys are base64url of fixed patterns; times from 2026-01-01.",
		Vectors: []vectors.Vector{
			v("one_key", "ParseRecord", "v=fm1; k="+a, "", "19.1"),
			v("rollover_server_and_host", "ParseRecord", "v=fm1; k="+a+"; k="+b+"; srv="+srv+"; at=mail.example.com:4433", "", "two keys during a rollover, the preferred first"),
			v("no_spaces_final_separator", "ParseRecord", "v=fm1;k="+a+";", "", "spaces around separators and one final separator are allowed"),
			v("unknown_tag_ignored", "ParseRecord", "v=fm1; k="+a+"; policy=x", "", "unknown tags are ignored"),
			v("at_ipv6", "ParseRecord", "v=fm1; k="+a+"; at=[2001:db8::1]:443", "", ""),
			v("no_key", "ParseRecord", "v=fm1; srv="+srv, malformed, "at least one k"),
			v("key_twice", "ParseRecord", "v=fm1; k="+a+"; k="+a, malformed, ""),
			v("key_padded", "ParseRecord", "v=fm1; k="+a+"=", malformed, "base64url without padding"),
			v("key_small_order", "ParseRecord", "v=fm1; k=AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", malformed, "a key of small order is refused"),
			v("srv_upper_case", "ParseRecord", "v=fm1; k="+a+"; srv="+strings.ToUpper(srv), malformed, ""),
			v("at_port_zero", "ParseRecord", "v=fm1; k="+a+"; at=mail.example.com:0", malformed, ""),
			v("tag_upper_case", "ParseRecord", "v=fm1; K="+a, malformed, ""),
			v("empty_tag", "ParseRecord", "v=fm1;; k="+a, malformed, ""),
			v("quote", "ParseRecord", "v=fm1; k="+a+"; x=\"", malformed, "printable ASCII without quote or backslash"),
			v("too_long", "ParseRecord", "v=fm1; k="+a+"; x="+strings.Repeat("y", 250), malformed, "at most 255 bytes"),
			v("version_2", "ParseRecord", "v=fm2; k="+a, version, ""),
			v("select_ignores_others", "SelectRecord", "v=spf1 -all\nv=fm1; k="+a+"\nv=fm2; q=1", "", "other TXT records and other versions are ignored"),
			v("select_two", "SelectRecord", "v=fm1; k="+a+"\nv=fm1; k="+b, "conflicting flowmail records", "exactly one version 1 record"),
			v("select_none", "SelectRecord", "v=spf1 -all", "no flowmail record", ""),
			v("select_only_newer", "SelectRecord", "v=fm2; q=1", version, ""),
			{Name: "request", Function: "DecodeRequest", Input: hex.EncodeToString(rq), Note: "19.6: alice's half of a certificate for the domain key of Pattern(32, 0xd0)"},
			{Name: "request_bad_user_signature", Function: "DecodeRequest", Input: hex.EncodeToString(bad), Error: "invalid name request"},
			{Name: "request_trailing_byte", Function: "DecodeRequest", Input: hex.EncodeToString(append(bytes.Clone(rq), 0)), Error: "invalid name request"},
			{Name: "carried_field", Function: "CarriedField", Input: hex.EncodeToString(cert.Bytes()), Note: "19.8: the completed certificate of the request vector, as a sender carries it: base64 in lines of 76, CRLF"},
			{Name: "carried", Function: "ParseCarried", Input: value, Note: "19.8: the field's value, folded as written"},
			{Name: "carried_unpadded", Function: "ParseCarried", Input: strings.TrimRight(strings.Join(strings.Fields(value), ""), "="), Error: "invalid carried certificate", Note: "padded standard base64 only"},
			{Name: "carried_truncated", Function: "ParseCarried", Input: strings.Join(strings.Fields(value), "")[:100], Error: "invalid carried certificate"},
			{Name: "carried_request", Function: "ParseCarried", Input: base64.StdEncoding.EncodeToString(rq), Error: "invalid carried certificate", Note: "a request is not a certificate"},
			{Name: "name_slot", Function: "NameSlot", Input: "Alice@Bücher.example", Params: map[string]string{"key": a}, Note: "19.3: the slot of the normalised name under a key DNS lists"},
			{Name: "name_slot_unicode_local_part", Function: "NameSlot", Input: "älice@example.com", Params: map[string]string{"key": a}, Error: "invalid name"},
		},
	}
}
