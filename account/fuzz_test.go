package account

import (
	"bytes"
	"testing"
)

// The server-side parsers of outside bytes: none may panic, and a record
// that parses re-encodes to the same bytes.
func FuzzParseRecord(f *testing.F) {
	f.Add(append(append(append([]byte{RecordVersion}, AppendKSF(nil, DefaultKSF)...), make([]byte, RecordSize)...), 0, 30))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRecord(b)
		if err != nil {
			return
		}
		if !bytes.Equal(r.Marshal(), b) {
			t.Fatal("ParseRecord then Marshal changed the bytes")
		}
	})
}

func FuzzServerMessages(f *testing.F) {
	keys, err := GenerateServerKeys()
	if err != nil {
		f.Fatal(err)
	}
	p := NewOPAQUE()
	_, ke1, _ := p.StartLogin(testAccount, testPassword)
	_, req, _ := p.StartRegistration(testAccount, testPassword)
	f.Add(ke1)
	f.Add(req)
	f.Add(make([]byte, RecordSize))
	f.Add(make([]byte, KE3Size))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = p.RegistrationResponse(keys, testAccount, b)
		_, _ = p.StretchResponse(keys, testAccount, b)
		_ = p.CheckRecord(b)
		_, _ = ParseServerKeys(b)
		_, _ = Open(make([]byte, ExportKeySize), testAccount, b)
		if _, sl, err := p.LoginResponse(keys, testAccount, nil, b); err == nil {
			_ = sl.Finish(b[:min(len(b), KE3Size)])
		}
	})
}
