package identity

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
)

var testCreated = time.Unix(1767225600, 0) // 2026-01-01T00:00:00Z

func seedOf(b byte) (s [SeedSize]byte) {
	for i := range s {
		s[i] = b + byte(i)
	}
	return s
}

func mustFromSeed(t testing.TB, b byte, d int) *Identity {
	t.Helper()
	id, err := FromSeed(seedOf(b), d, testCreated)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestFromSeedIsDeterministic(t *testing.T) {
	a, b := mustFromSeed(t, 1, 22), mustFromSeed(t, 1, 22)
	if !bytes.Equal(a.Public().Block, b.Public().Block) || a.ID() != b.ID() {
		t.Fatal("same seed gave different pubkey blocks")
	}
	if c := mustFromSeed(t, 2, 22); c.ID() == a.ID() {
		t.Fatal("different seeds gave the same ID")
	}
	if c := mustFromSeed(t, 1, 21); c.ID() == a.ID() {
		t.Fatal("a different difficulty must give a different address")
	}
	if a.ID() != block.Sum(a.Public().Block) || len(a.Public().Block) != block.PubkeySize {
		t.Fatal("ID is not the hash of the pubkey block")
	}
}

func TestFromSeedRejectsBadDifficulty(t *testing.T) {
	for _, d := range []int{-1, block.MaxDifficulty + 1} {
		if _, err := FromSeed(seedOf(0), d, testCreated); err == nil {
			t.Errorf("difficulty %d accepted", d)
		}
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	alice, bob := mustFromSeed(t, 1, 8), mustFromSeed(t, 2, 8)
	ct, err := bob.Public().Seal(block.LabelIndex, []byte("secret manifest"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ct) != len("secret manifest")+SealOverhead {
		t.Fatalf("overhead %d, want %d", len(ct)-len("secret manifest"), SealOverhead)
	}
	pt, err := bob.Open(block.LabelIndex, ct)
	if err != nil || string(pt) != "secret manifest" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	if _, err := alice.Open(block.LabelIndex, ct); !errors.Is(err, ErrNotForMe) {
		t.Fatalf("wrong recipient: %v", err)
	}
	if _, err := bob.Open(block.LabelMail, ct); !errors.Is(err, ErrNotForMe) {
		t.Fatalf("wrong label must not open: %v", err)
	}
}

func TestSignVerifyIsLabelBound(t *testing.T) {
	a := mustFromSeed(t, 1, 8)
	sig := a.Sign(block.LabelEnvelope, []byte("m"))
	if !a.Public().Verify(block.LabelEnvelope, []byte("m"), sig[:]) {
		t.Fatal("own signature does not verify")
	}
	if a.Public().Verify(block.LabelRecord, []byte("m"), sig[:]) {
		t.Fatal("signature verified under another label")
	}
	if a.Public().Verify(block.LabelEnvelope, []byte("n"), sig[:]) {
		t.Fatal("signature verified for other data")
	}
}

// signedPubkey builds a validly self-signed pubkey block around p, so
// tests can produce blocks that only later checks reject.
func signedPubkey(id *Identity, p *block.Pubkey) []byte {
	copy(p.SignKey[:], id.sign.Public().(ed25519.PublicKey))
	copy(p.Signature[:], ed25519.Sign(id.sign, block.SignedMessage(block.LabelPubkey, p.AppendSigned(nil))))
	return p.Encode()
}

func TestParsePubkeyChecks(t *testing.T) {
	id := mustFromSeed(t, 1, 22)
	good := id.Public().Block
	if _, err := ParsePubkey(good); err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte { b := bytes.Clone(good); b[i] ^= 1; return b }
	badEnc, _ := block.ParsePubkey(good)
	for i := range badEnc.EncKey[:1184] {
		badEnc.EncKey[i] = 0xff // ML-KEM coefficients >= q
	}
	for name, tc := range map[string]struct {
		b    []byte
		want error
	}{
		"flipped signature": {flip(block.PubkeySize - 1), block.ErrSignature},
		"flipped created":   {flip(5), block.ErrSignature},
		"flipped enc key":   {flip(100), block.ErrSignature},
		"invalid enc key":   {signedPubkey(id, badEnc), block.ErrPubkey},
		"truncated":         {good[:100], block.ErrTruncated},
		"other type":        {block.Data{Payload: []byte{1}}.Encode(), block.ErrWrongType},
	} {
		if _, err := ParsePubkey(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", name, err, tc.want)
		}
	}
}

func TestParsePubkeyRefusesLowOrderX25519Share(t *testing.T) {
	id := mustFromSeed(t, 1, 22)
	// The X25519 points of order 1, 2, 4 and 8, in canonical and
	// non-canonical (u >= p) encodings.
	for _, share := range []string{
		"0000000000000000000000000000000000000000000000000000000000000000",
		"0100000000000000000000000000000000000000000000000000000000000000",
		"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
		"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	} {
		p, _ := block.ParsePubkey(id.Public().Block)
		raw, _ := hex.DecodeString(share)
		copy(p.EncKey[block.EncKeySize-x25519ShareSize:], raw)
		if _, err := ParsePubkey(signedPubkey(id, p)); !errors.Is(err, block.ErrPubkey) {
			t.Errorf("X25519 share %s: got %v, want ErrPubkey", share, err)
		}
	}
}

func TestCheckVerifiesPubkeySignatures(t *testing.T) {
	good := mustFromSeed(t, 1, 22).Public().Block
	bad := bytes.Clone(good)
	bad[len(bad)-1] ^= 1
	if _, err := Check(good); err != nil {
		t.Fatal(err)
	}
	if _, err := block.Check(bad); err != nil {
		t.Fatalf("layout check should pass: %v", err)
	}
	if _, err := Check(bad); !errors.Is(err, block.ErrSignature) {
		t.Fatalf("Check(bad signature) = %v", err)
	}
}

func TestAddressRoundTripAndTypos(t *testing.T) {
	id := mustFromSeed(t, 1, 22)
	addr := id.Address()
	if len(addr) != 61 || !strings.HasPrefix(addr, "fm1") {
		t.Fatalf("address %q: want fm1 and 61 characters", addr)
	}
	got, err := ParseAddress("  " + strings.ToUpper(addr) + "\n")
	if err != nil || got != id.ID() {
		t.Fatalf("ParseAddress(upper) = %v, %v", got, err)
	}
	// Every single-character substitution is caught as a typo.
	const alphabet = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
	for i := 3; i < len(addr); i++ {
		for _, c := range alphabet {
			if byte(c) == addr[i] {
				continue
			}
			typo := addr[:i] + string(c) + addr[i+1:]
			if _, err := ParseAddress(typo); !errors.Is(err, ErrAddressTypo) {
				t.Fatalf("substitution at %d (%q): %v", i, typo, err)
			}
		}
	}
	for name, tc := range map[string]struct {
		s    string
		want error
	}{
		"dropped character": {addr[:30] + addr[31:], ErrAddressTypo},
		"letter o":          {addr[:10] + "o" + addr[11:], ErrAddressTypo},
		"other prefix":      {"bc1" + addr[3:], ErrAddressFormat},
		"mixed case":        {strings.ToUpper(addr[:10]) + addr[10:], ErrAddressFormat},
		"hex ID":            {id.ID().String(), ErrAddressFormat},
		"empty":             {"", ErrAddressFormat},
	} {
		if _, err := ParseAddress(tc.s); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

func TestKeyFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	id := mustFromSeed(t, 1, 22)
	path := filepath.Join(dir, "sub", "identity.key")
	pass := func() ([]byte, error) { return []byte("correct horse"), nil }
	if err := WriteKeyFile(path, id, KeyFileOptions{Passphrase: []byte("correct horse"), ScryptLogN: 10}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	got, err := ReadKeyFile(path, pass)
	if err != nil || got.ID() != id.ID() {
		t.Fatalf("read back: %v", err)
	}
	if _, err := ReadKeyFile(path, func() ([]byte, error) { return []byte("wrong"), nil }); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if _, err := ReadKeyFile(path, nil); !errors.Is(err, ErrPassphraseRequired) {
		t.Fatalf("no passphrase: %v", err)
	}
	if err := WriteKeyFile(path, mustFromSeed(t, 2, 22), KeyFileOptions{NoPassphrase: true}); !errors.Is(err, ErrKeyFileExists) {
		t.Fatalf("overwrite: %v", err)
	}
	if again, _ := ReadKeyFile(path, pass); again == nil || again.ID() != id.ID() {
		t.Fatal("existing key file was replaced")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func TestKeyFileNeedsExplicitNoPassphrase(t *testing.T) {
	dir := t.TempDir()
	id := mustFromSeed(t, 1, 22)
	if err := WriteKeyFile(filepath.Join(dir, "a"), id, KeyFileOptions{}); err == nil {
		t.Fatal("empty passphrase accepted without NoPassphrase")
	}
	if err := WriteKeyFile(filepath.Join(dir, "b"), id, KeyFileOptions{NoPassphrase: true}); err != nil {
		t.Fatal(err)
	}
	got, err := ReadKeyFile(filepath.Join(dir, "b"), nil)
	if err != nil || got.ID() != id.ID() {
		t.Fatalf("unprotected key: %v", err)
	}
}

func TestKeyFileRefusesLooseMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k")
	if err := WriteKeyFile(path, mustFromSeed(t, 1, 8), KeyFileOptions{NoPassphrase: true}); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadKeyFile(path, nil); !errors.Is(err, ErrKeyFilePermissions) || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("loose mode: %v", err)
	}
}

func TestDecodeKeyFileRejectsDamage(t *testing.T) {
	id := mustFromSeed(t, 1, 8)
	clear, err := encodeKeyFile(id, KeyFileOptions{NoPassphrase: true})
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := encodeKeyFile(id, KeyFileOptions{Passphrase: []byte("p"), ScryptLogN: 10})
	if err != nil {
		t.Fatal(err)
	}
	pass := func() ([]byte, error) { return []byte("p"), nil }
	flip := func(b []byte, i int) []byte { c := bytes.Clone(b); c[i] ^= 1; return c }
	for name, tc := range map[string]struct {
		b    []byte
		want error
	}{
		"empty":                    {nil, ErrKeyFile},
		"bad magic":                {flip(clear, 0), ErrKeyFile},
		"unknown kdf":              {flip(clear, 16), ErrKeyFile},
		"short clear":              {clear[:len(clear)-1], ErrKeyFile},
		"long clear":               {append(bytes.Clone(clear), 0), ErrKeyFile},
		"logN too high":            {func() []byte { c := bytes.Clone(sealed); c[17] = 40; return c }(), ErrKeyFile},
		"tampered header":          {func() []byte { c := bytes.Clone(sealed); c[20] ^= 1; return c }(), ErrWrongPassphrase},
		"tampered body":            {flip(sealed, len(sealed)-1), ErrWrongPassphrase},
		"truncated sealed":         {sealed[:len(sealed)-1], ErrKeyFile},
		"difficulty too big":       {func() []byte { c := bytes.Clone(clear); c[17+1+SeedSize] = 99; return c }(), ErrKeyFile},
		"next key role":            {func() []byte { c := bytes.Clone(clear); c[17] = roleNext; return c }(), ErrKeyFileRole},
		"unknown role":             {func() []byte { c := bytes.Clone(clear); c[17] = 9; return c }(), ErrKeyFile},
		"address not its ID":       {flip(clear, len(clear)-3), ErrKeyFile},
		"generation too big":       {func() []byte { c := bytes.Clone(clear); c[len(c)-2] = block.MaxRotations + 1; return c }(), ErrKeyFile},
		"retired without rotation": {func() []byte { c := bytes.Clone(clear); c[len(c)-1] = 1; return c }(), ErrKeyFile},
	} {
		_, err := DecodeKeyFile(tc.b, pass)
		if tc.want == nil {
			if err == nil {
				t.Errorf("%s: accepted", name)
			}
			continue
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

// TestFromSeedCommitsToTheDerivedNextKey pins section 10: a key file's
// pubkey block commits to the signing key of LH("flowmail/v1 next seed",
// seed).
func TestFromSeedCommitsToTheDerivedNextKey(t *testing.T) {
	id := mustFromSeed(t, 1, 8)
	seed := seedOf(1)
	nextSeed := block.LabeledHash("flowmail/v1 next seed", seed[:])
	signSeed := block.LabeledHash("flowmail/v1 sign key", nextSeed[:])
	next := ed25519.NewKeyFromSeed(signSeed[:]).Public().(ed25519.PublicKey)
	if id.Public().Next != block.LabeledHash("flowmail/v1 next key", next) {
		t.Fatal("pubkey block's next is not the commitment to the derived next key")
	}
	if id.Public().Next == block.NextCommitment(id.Public().SignKey) {
		t.Fatal("next commits to the current key")
	}
}
