package kademlia

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"testing"

	"github.com/flowmail/flowmail/internal/vectors"
	"github.com/flowmail/flowmail/transport"
)

func sampleSavedContacts() []SavedContact {
	return []SavedContact{
		{Contact: transport.Contact{ID: testID(1), Addr: netip.MustParseAddrPort("192.0.2.1:4433")}, LastSeen: 1767225600},
		{Contact: transport.Contact{ID: testID(2), Addr: netip.MustParseAddrPort("[2001:db8::2]:4433")}, LastSeen: 1767225000},
	}
}

func checkContactsVector(v vectors.Vector) (map[string]string, string) {
	b, err := vectorInput(v)
	if err != nil {
		return nil, "bad input: " + err.Error()
	}
	if v.Function != "DecodeContacts" {
		return nil, "unknown function " + v.Function
	}
	cs, err := DecodeContacts(b)
	if err != nil {
		return nil, errName(err)
	}
	enc, err := EncodeContacts(cs)
	if err != nil || !bytes.Equal(enc, b) {
		return nil, fmt.Sprintf("re-encoding differs (%v)", err)
	}
	out := map[string]string{"count": strconv.Itoa(len(cs))}
	for i, c := range cs {
		out[fmt.Sprintf("contact%d", i)] = fmt.Sprintf("%v@%v seen %d", c.ID, c.Addr, c.LastSeen)
	}
	return out, ""
}

func genContactsVectors() vectors.File {
	hx := hex.EncodeToString
	two, err := EncodeContacts(sampleSavedContacts())
	if err != nil {
		panic(err)
	}
	empty, _ := EncodeContacts(nil)
	magic := len(contactsMagic)
	first := magic + 2 // first contact's ID
	dup := bytes.Clone(two)
	copy(dup[first+32+7+8:], dup[first:first+32]) // second ID := first ID
	zero := bytes.Clone(two)
	copy(zero[first:first+32], make([]byte, 32))
	tooMany := binary.BigEndian.AppendUint16([]byte(contactsMagic), MaxSavedContacts+1)
	vs := []vectors.Vector{
		{Name: "two_contacts", Function: "DecodeContacts", Input: hx(two)},
		{Name: "no_contacts", Function: "DecodeContacts", Input: hx(empty)},
		{Name: "empty_file", Function: "DecodeContacts", Input: "", Error: "not a saved-contacts file"},
		{Name: "wrong_magic", Function: "DecodeContacts", Input: hx(append([]byte("flowmail-contacts v2\n"), two[magic:]...)), Error: "not a saved-contacts file"},
		{Name: "no_count", Function: "DecodeContacts", Input: hx(two[:magic+1]), Error: "truncated"},
		{Name: "truncated_contact", Function: "DecodeContacts", Input: hx(two[:len(two)-1]), Error: "truncated"},
		{Name: "trailing_byte", Function: "DecodeContacts", Input: hx(append(bytes.Clone(two), 0)), Error: "trailing bytes"},
		{Name: "count_above_max", Function: "DecodeContacts", Input: hx(tooMany), Error: "count above limit"},
		{Name: "bad_family", Function: "DecodeContacts", Input: hx(func() []byte { b := bytes.Clone(two); b[first+32] = 5; return b }()), Error: "unknown address family"},
		{Name: "duplicate_id", Function: "DecodeContacts", Input: hx(dup), Error: "zero or duplicate contact ID"},
		{Name: "zero_id", Function: "DecodeContacts", Input: hx(zero), Error: "zero or duplicate contact ID"},
	}
	return vectors.File{
		Description: fmt.Sprintf("Saved-contacts file of package kademlia (magic %q, count u16 up to %d, then id [32] || addr || last_seen u64 per contact), fed to kademlia.DecodeContacts; an ok vector re-encodes to its input.", contactsMagic, MaxSavedContacts),
		Vectors:     vs,
	}
}

func TestContactsVectors(t *testing.T) {
	vectors.Check(t, "kademlia_contacts.json", genContactsVectors, checkContactsVector)
}

func TestEncodeContactsRefusesDuplicates(t *testing.T) {
	cs := sampleSavedContacts()
	cs[1].ID = cs[0].ID
	if _, err := EncodeContacts(cs); err == nil {
		t.Fatal("encoded two contacts with one ID")
	}
}

func FuzzContacts(f *testing.F) {
	for _, v := range genContactsVectors().Vectors {
		if b, err := hex.DecodeString(v.Input); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cs, err := DecodeContacts(b)
		if err != nil {
			return
		}
		enc, err := EncodeContacts(cs)
		if err != nil {
			t.Fatalf("decoded %x but cannot re-encode: %v", b, err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding %x gives %x", b, enc)
		}
	})
}
