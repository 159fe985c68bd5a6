package server

import (
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/flowmail/flowmail/account"
	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/internal/vectors"
)

const vectorFile = "server_messages.json"

// TestVectors walks testdata/vectors/server_messages.json (regenerate
// with go test -update).
func TestVectors(t *testing.T) {
	vectors.Check(t, vectorFile, genVectors, func(v vectors.Vector) (map[string]string, string) {
		in, err := hex.DecodeString(v.Input)
		if err != nil {
			return nil, "unexpected: " + err.Error()
		}
		m, err := Decode(in)
		if err != nil {
			return nil, vectors.RuleName(err, ErrUnknownType, ErrTruncated, ErrTrailing, ErrLengthRange, ErrAccountBytes, ErrOrder)
		}
		return describe(m), ""
	})
}

// describe gives a decoded message's fields as vector outputs.
func describe(m Message) map[string]string {
	x := vectors.MustHex
	out := map[string]string{"type": fmt.Sprintf("%#02x", uint8(m.Type()))}
	switch m := m.(type) {
	case RegisterInit:
		out["account"], out["request"] = m.Account, x(m.Request[:])
	case Stretch:
		out["account"], out["request"] = m.Account, x(m.Request[:])
	case StretchResponse:
		out["ksf"], out["response"] = x(account.AppendKSF(nil, m.KSF)), x(m.Response[:])
	case RegisterResponse:
		out["session"], out["response"] = x(m.Session[:]), x(m.Response[:])
	case RegisterFinish:
		out["ksf"] = x(account.AppendKSF(nil, m.KSF))
		out["session"], out["record"], out["pubkey"], out["sealed"], out["signature"] = x(m.Session[:]), x(m.Record[:]), x(m.Pubkey), x(m.Sealed), x(m.Signature[:])
	case LoginInit:
		out["account"], out["ke1"] = m.Account, x(m.KE1[:])
	case LoginResponse:
		out["session"], out["ke2"] = x(m.Session[:]), x(m.KE2[:])
	case LoginFinish:
		out["session"], out["ke3"] = x(m.Session[:]), x(m.KE3[:])
	case Sealed:
		out["sealed"] = x(m.Sealed)
	case Hold:
		out["owner"] = m.Owner.String()
	case HoldStatus:
		out["state"], out["not_after"], out["mails"], out["bytes"], out["quota"], out["text"] = fmt.Sprint(uint8(m.State)), fmt.Sprint(m.NotAfter), fmt.Sprint(m.Mails), fmt.Sprint(m.Bytes), fmt.Sprint(m.QuotaBytes), m.Text
	case HeldList:
		out["owner"], out["after"] = m.Owner.String(), m.After.String()
	case HeldIDs:
		out["more"], out["ids"] = fmt.Sprint(m.More), fmt.Sprint(m.IDs)
	case HeldGet:
		out["owner"], out["id"] = m.Owner.String(), m.ID.String()
	case HeldBlock:
		out["block"] = x(m.Block)
	case HeldConfirm:
		out["owner"], out["time"], out["ids"], out["signature"] = m.Owner.String(), fmt.Sprint(m.Time), fmt.Sprint(m.IDs), x(m.Signature[:])
	}
	return out
}

// sampleMessages are one valid message of each type, of pattern bytes.
func sampleMessages() []Message {
	p := vectors.Pattern
	acct := testAddress(1)
	var ri RegisterInit
	ri.Account = acct
	copy(ri.Request[:], p(len(ri.Request), 1))
	var rr RegisterResponse
	copy(rr.Session[:], p(SessionSize, 2))
	copy(rr.Response[:], p(len(rr.Response), 3))
	var rf RegisterFinish
	copy(rf.Session[:], p(SessionSize, 4))
	rf.KSF = account.DefaultKSF
	copy(rf.Record[:], p(len(rf.Record), 5))
	rf.Pubkey = p(40, 6)
	rf.Sealed = p(account.SealOverhead+8, 7)
	copy(rf.Signature[:], p(SignatureSize, 8))
	var li LoginInit
	li.Account = acct
	copy(li.KE1[:], p(len(li.KE1), 9))
	var lr LoginResponse
	copy(lr.Session[:], p(SessionSize, 10))
	copy(lr.KE2[:], p(len(lr.KE2), 11))
	var lf LoginFinish
	copy(lf.Session[:], p(SessionSize, 12))
	copy(lf.KE3[:], p(len(lf.KE3), 13))
	var owner, second, third block.ID
	copy(owner[:], p(32, 15))
	second[0], third[0] = 1, 2
	var hc HeldConfirm
	hc.Owner, hc.Time, hc.IDs = owner, 1767225600, []block.ID{second, third}
	copy(hc.Signature[:], p(SignatureSize, 16))
	var st Stretch
	st.Account = acct
	copy(st.Request[:], p(len(st.Request), 18))
	var sr StretchResponse
	sr.KSF = account.KSFParams{ID: account.KSFArgon2id, Time: 4, MemoryKiB: 128 << 10, Lanes: 4}
	copy(sr.Response[:], p(len(sr.Response), 19))
	return []Message{ri, rr, rf, li, lr, lf, Sealed{Sealed: p(account.SealOverhead+1, 14)},
		Hold{Owner: owner},
		HoldStatus{State: HoldCollecting, NotAfter: 1767225600, Mails: 2, Bytes: 12345, QuotaBytes: DefaultHeldQuota, Text: "collecting until 2026-01-01T00:00:00Z"},
		HeldList{Owner: owner, After: second},
		HeldIDs{More: true, IDs: []block.ID{second, third}},
		HeldGet{Owner: owner, ID: third},
		HeldBlock{Block: p(40, 17)},
		hc,
		st, sr,
	}
}

var typeNames = map[MsgType]string{
	TypeRegisterInit: "REGISTER_INIT", TypeRegisterResponse: "REGISTER_RESPONSE", TypeRegisterFinish: "REGISTER_FINISH",
	TypeLoginInit: "LOGIN_INIT", TypeLoginResponse: "LOGIN_RESPONSE", TypeLoginFinish: "LOGIN_FINISH", TypeSealed: "SEALED",
	TypeHold: "HOLD", TypeHoldStatus: "HOLD_STATUS", TypeHeldList: "HELD_LIST", TypeHeldIDs: "HELD_IDS",
	TypeHeldGet: "HELD_GET", TypeHeldBlock: "HELD_BLOCK", TypeHeldConfirm: "HELD_CONFIRM",
	TypeStretch: "STRETCH", TypeStretchResponse: "STRETCH_RESPONSE",
}

func genVectors() vectors.File {
	f := vectors.File{Description: "Account and held-mail messages of the domain server (docs/PROTOCOL.md 18.5, 21.5), fed to server.Decode. KSF bounds are the account's (account.json), not the decoder's."}
	add := func(name string, in []byte, errName, note string) {
		f.Vectors = append(f.Vectors, vectors.Vector{Name: name, Function: "server.Decode", Input: hex.EncodeToString(in), Error: errName, Note: note})
	}
	for _, m := range sampleMessages() {
		b := Encode(m)
		name := typeNames[m.Type()]
		add(name, b, "", "")
		add(name+" truncated", b[:len(b)-1], "truncated", "every field is length-checked before it is read")
		add(name+" with a trailing byte", append(b, 0), "trailing bytes", "trailing bytes are refused (section 12)")
	}
	ri := Encode(sampleMessages()[0])
	zero := append([]byte{ri[0], 0}, ri[2+ri[1]:]...)
	add("REGISTER_INIT with acct_len 0", zero, "length out of range", "acct_len is 1 to 128")
	long := append([]byte{ri[0], MaxAccountLen + 1}, make([]byte, MaxAccountLen+1+account.RegistrationRequestSize)...)
	add("REGISTER_INIT with acct_len 129", long, "length out of range", "acct_len is 1 to 128")
	sp := append([]byte(nil), ri...)
	sp[5] = ' '
	add("REGISTER_INIT with a space in the account", sp, "account not printable ASCII", "account bytes are 0x21 to 0x7e")
	rf := sampleMessages()[2].(RegisterFinish)
	rf.Pubkey = vectors.Pattern(MaxPubkeySize+1, 2)
	add("REGISTER_FINISH with pubkey_len 1363", Encode(rf), "length out of range", "pubkey_len is 1 to PubkeySize")
	s := Encode(Sealed{Sealed: vectors.Pattern(account.SealOverhead+1, 1)})
	short := append([]byte{s[0], 0, account.SealOverhead}, s[3:len(s)-1]...)
	add("SEALED of 28 bytes", short, "length out of range", "sealed_len is 29 to 8220")
	hi := Encode(HeldIDs{IDs: []block.ID{{2}, {1}}})
	add("HELD_IDS out of order", hi, "IDs out of order", "IDs are strictly ascending")
	hcb := Encode(HeldConfirm{IDs: nil})
	add("HELD_CONFIRM with no IDs", hcb, "length out of range", "count is 1 to 1024")
	hs := Encode(HoldStatus{State: lastHoldState + 1})
	add("HOLD_STATUS with state 8", hs, "length out of range", "state is 0 to 7")
	hb := Encode(HeldBlock{Block: make([]byte, block.MaxBlockSize+1)})
	add("HELD_BLOCK over MaxBlockSize", hb[:5], "length out of range", "block_len is 1 to MaxBlockSize, checked before the block is read")
	add("empty", nil, "truncated", "a message holds at least its type")
	add("type 0x4e (reserved, unassigned)", []byte{0x4e}, "unknown message type", "unknown types are refused")
	add("type 0x52 (unassigned)", append([]byte{0x52}, make([]byte, 64)...), "unknown message type", "unknown types are refused")
	return f
}
