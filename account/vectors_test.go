package account

import (
	"encoding/hex"
	"testing"

	"github.com/flowmail/flowmail/internal/vectors"
)

// TestVectors walks testdata/vectors/account.json: the sealed identity
// (docs/PROTOCOL.md 18.3) and the stored record (18.4). Regenerate with
// go test -update.
func TestVectors(t *testing.T) {
	vectors.Check(t, "account.json", genVectors, func(v vectors.Vector) (map[string]string, string) {
		in, err := hex.DecodeString(v.Input)
		if err != nil {
			return nil, "unexpected: " + err.Error()
		}
		switch v.Function {
		case "account.Open":
			key, err := hex.DecodeString(v.Params["export_key"])
			if err != nil {
				return nil, "unexpected: " + err.Error()
			}
			id, err := Open(key, v.Params["account"], in)
			if err != nil {
				return nil, vectors.RuleName(err, ErrSealed, ErrMalformed)
			}
			return map[string]string{"identity": hex.EncodeToString(id)}, ""
		case "account.ParseRecord":
			r, err := ParseRecord(in)
			if err != nil {
				return nil, vectors.RuleName(err, ErrMalformed)
			}
			return map[string]string{"ksf": hex.EncodeToString(AppendKSF(nil, r.KSF)), "opaque": hex.EncodeToString(r.OPAQUE), "sealed": hex.EncodeToString(r.Sealed)}, ""
		}
		return nil, "unexpected function " + v.Function
	})
}

func genVectors() File {
	const acct = "fm1example"
	export := vectors.Pattern(ExportKeySize, 1)
	var nonce [12]byte
	copy(nonce[:], vectors.Pattern(12, 2))
	sealed, err := sealWithNonce(export, acct, []byte("flowmail-key v2\n(a key file)"), nonce)
	if err != nil {
		panic(err)
	}
	params := map[string]string{"export_key": hex.EncodeToString(export), "account": acct}
	other := map[string]string{"export_key": hex.EncodeToString(export), "account": "fm1other"}
	f := File{Description: "Sealed identities (account.Open, docs/PROTOCOL.md 18.3) and stored account records (account.ParseRecord, 18.4)."}
	add := func(name, fn string, in []byte, p map[string]string, errName, note string) {
		f.Vectors = append(f.Vectors, vectors.Vector{Name: name, Function: fn, Input: hex.EncodeToString(in), Params: p, Error: errName, Note: note})
	}
	add("sealed identity", "account.Open", sealed, params, "", "key = HKDF-SHA-512(export_key, info = label || account)")
	add("sealed under another account", "account.Open", sealed, other, "sealed identity does not open", "the account is bound into the key and the AD")
	flipped := append([]byte(nil), sealed...)
	flipped[len(flipped)-1] ^= 1
	add("sealed identity with a flipped tag bit", "account.Open", flipped, params, "sealed identity does not open", "")
	add("sealed identity of 28 bytes", "account.Open", sealed[:SealOverhead], params, "malformed message", "a sealed identity holds at least one byte")

	// A record needs an OPAQUE record that decodes: take a real one.
	p := NewOPAQUE()
	keys, _ := GenerateServerKeys()
	reg, req, _ := p.StartRegistration(acct, []byte("pw"))
	resp, _ := p.RegistrationResponse(keys, acct, req)
	op, _, err := reg.Finish(resp, DefaultKSF)
	if err != nil {
		panic(err)
	}
	rec := (&Record{KSF: DefaultKSF, OPAQUE: op, Sealed: sealed}).Marshal()
	add("account record", "account.ParseRecord", rec, nil, "", "")
	add("account record with a byte past sealed", "account.ParseRecord", append(append([]byte(nil), rec...), 0), nil, "malformed message", "lengths must agree")
	v2 := append([]byte(nil), rec...)
	v2[0] = 2
	add("account record of version 2", "account.ParseRecord", v2, nil, "malformed message", "unknown versions are refused")
	return f
}

// File is vectors.File, named here for brevity.
type File = vectors.File
