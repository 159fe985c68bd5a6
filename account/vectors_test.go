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
		case "account.Stretch":
			kb, err := hex.DecodeString(v.Params["ksf"])
			if err != nil {
				return nil, "unexpected: " + err.Error()
			}
			k, err := ParseKSF(kb)
			if err == nil {
				err = k.Check()
			}
			if err != nil {
				return nil, vectors.RuleName(err, ErrKSFBounds, ErrUnsupportedKSF, ErrMalformed)
			}
			return map[string]string{"secret": hex.EncodeToString(stretch(k, in))}, ""
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
	f := File{Description: "Sealed identities (account.Open, docs/PROTOCOL.md 18.3), stored account records (account.ParseRecord, 18.4) and the stretch (account.Stretch, 18.2)."}
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
	reg, req, _ := p.StartRegistration(acct, []byte("a stretched secret"))
	resp, _ := p.RegistrationResponse(keys, acct, req)
	op, _, err := reg.Finish(resp)
	if err != nil {
		panic(err)
	}
	rec := (&Record{KSF: DefaultKSF, OPAQUE: op, Sealed: sealed}).Marshal()
	add("account record", "account.ParseRecord", rec, nil, "", "")
	add("account record with a byte past sealed", "account.ParseRecord", append(append([]byte(nil), rec...), 0), nil, "malformed message", "lengths must agree")
	v3 := append([]byte(nil), rec...)
	v3[0] = 3
	add("account record of version 3", "account.ParseRecord", v3, nil, "malformed message", "unknown versions are refused")
	v1 := append([]byte(nil), rec...)
	v1[0] = 1
	add("account record of version 1", "account.ParseRecord", v1, nil, "malformed message", "made before the stretch OPRF: refused, the user registers again")
	for _, c := range []struct {
		name string
		ksf  KSFParams
	}{
		{"memory below the minimum", KSFParams{ID: KSFArgon2id, Time: 3, MemoryKiB: MinArgon2MemoryKiB - 1, Lanes: 4}},
		{"passes below the minimum", KSFParams{ID: KSFArgon2id, Time: 2, MemoryKiB: MinArgon2MemoryKiB, Lanes: 4}},
		{"memory above the maximum", KSFParams{ID: KSFArgon2id, Time: 3, MemoryKiB: MaxArgon2MemoryKiB + 1, Lanes: 4}},
		{"lanes above the maximum", KSFParams{ID: KSFArgon2id, Time: 3, MemoryKiB: MinArgon2MemoryKiB, Lanes: MaxArgon2Lanes + 1}},
		{"unknown function", KSFParams{ID: 2, Time: 3, MemoryKiB: MinArgon2MemoryKiB, Lanes: 4}},
	} {
		b := (&Record{KSF: c.ksf, OPAQUE: op, Sealed: sealed}).Marshal()
		add("account record with "+c.name, "account.ParseRecord", b, nil, "malformed message", "parameters out of the bounds of 18.2")
	}
	raised := (&Record{KSF: KSFParams{ID: KSFArgon2id, Time: MaxArgon2Time, MemoryKiB: MaxArgon2MemoryKiB, Lanes: MaxArgon2Lanes}, OPAQUE: op, Sealed: sealed}).Marshal()
	add("account record with the maximum parameters", "account.ParseRecord", raised, nil, "", "")
	add("stretch at the minimum parameters", "account.Stretch", vectors.Pattern(64, 3), map[string]string{"ksf": hex.EncodeToString(AppendKSF(nil, DefaultKSF))}, "",
		"Argon2id(password = input (the stretch OPRF's output), salt = \"flowmail/v1 account stretch\", t, m, p, 64 bytes)")
	low := DefaultKSF
	low.MemoryKiB = 32 << 10
	add("stretch below the minimum", "account.Stretch", vectors.Pattern(64, 3), map[string]string{"ksf": hex.EncodeToString(AppendKSF(nil, low))},
		"key-stretching parameters out of bounds", "a client MUST refuse before running them")
	return f
}

// File is vectors.File, named here for brevity.
type File = vectors.File
