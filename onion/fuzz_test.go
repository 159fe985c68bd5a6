package onion

import (
	"bytes"
	"encoding/hex"
	"strconv"
	"testing"
	"time"
)

// fuzzVectors returns the inputs of the vector file for function fn,
// padded as the vectors say: the seed corpus of each fuzz target.
func fuzzVectors(f *testing.F, fn string) [][]byte {
	file := loadVectors(f)
	var out [][]byte
	for _, v := range file.Vectors {
		if v.Function != fn || v.Input == "" {
			continue
		}
		b, err := hex.DecodeString(v.Input)
		if err != nil {
			f.Fatal(err)
		}
		if n, ok := v.Params["pad_to"]; ok {
			size, _ := strconv.Atoi(n)
			b = append(b, make([]byte, size-len(b))...)
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		f.Fatalf("no %s vectors to seed from", fn)
	}
	return out
}

// FuzzRelayPacket feeds arbitrary bytes to a relay as packets from a
// peer: it must never panic, must count every drop under a reason, and
// what it hands on is always one packet of PacketSize bytes.
func FuzzRelayPacket(f *testing.F) {
	for _, b := range fuzzVectors(f, "RoundTrip") {
		f.Add(b)
		f.Add(b[:len(b)/2])
		m := bytes.Clone(b)
		m[headerOffset+stampOffset+8] ^= 1
		f.Add(m)
	}
	f.Add([]byte{})
	id := testIdentity(f, 0)
	now := time.Unix(1796126400, 0)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		r, err := NewRelay(RelayConfig{ID: id.ID(), Key: id.EncryptionKey(), MinWork: 1})
		if err != nil {
			t.Fatal(err)
		}
		err = r.Receive(now, bytes.Clone(pkt))
		if err == nil {
			_, err = r.Process(now)
		}
		st := r.Stats()
		if err != nil {
			if st.TotalDropped() != 1 || st.DroppedFor(errInternal) != 0 {
				t.Fatalf("dropped (%v) but counted %v", err, st.Dropped)
			}
			return
		}
		o, ok := r.Due(now.Add(MaxHopDelay))
		if !ok {
			t.Fatal("accepted packet produced nothing")
		}
		if o.Forward != nil && len(o.Forward.Packet) != PacketSize {
			t.Fatalf("hands on %d bytes", len(o.Forward.Packet))
		}
	})
}

// FuzzLayer seals arbitrary command bytes and exit body bytes into a
// well-formed one-hop packet, so the fuzzer reaches the decoders behind
// the layer's tag: a relay must refuse every command or body that does not
// re-encode to the same bytes, and accept every one that does.
func FuzzLayer(f *testing.F) {
	for _, c := range fuzzVectors(f, "ParseCommand") {
		f.Add(c, []byte{byte(KindPing), 0})
	}
	for _, b := range fuzzVectors(f, "ParseExitBody") {
		f.Add(make([]byte, CommandSize), bytes.TrimRight(b, "\x00"))
	}
	rs := []*testRelay{newTestRelay(f, 0)}
	now := time.Unix(1796126400, 0)
	f.Fuzz(func(t *testing.T, cmd, body []byte) {
		if len(cmd) != CommandSize || len(body) > BodySize {
			return
		}
		body = append(bytes.Clone(body), make([]byte, BodySize-len(body))...)
		// The epoch must be current for the command to reach the body.
		cmd = bytes.Clone(cmd)
		copy(cmd[2:6], []byte{byte(EpochOf(now) >> 24), byte(EpochOf(now) >> 16), byte(EpochOf(now) >> 8), byte(EpochOf(now))})
		spec := hopSpec{id: rs[0].hop.ID(), key: rs[0].hop.Pubkey.EncKey, cmd: cmd, work: 1}
		r, err := NewRelay(RelayConfig{ID: rs[0].hop.ID(), Key: rs[0].ident.EncryptionKey(), MinWork: 1})
		if err != nil {
			t.Fatal(err)
		}
		pkt := rawPacket(t, []hopSpec{spec}, body)
		if err := r.Receive(now, pkt); err != nil {
			t.Fatalf("well-formed packet refused: %v", err)
		}
		_, err = r.Process(now)
		c, cerr := ParseCommand(cmd)
		if cerr != nil {
			if err == nil {
				t.Fatalf("relay took command %x that does not parse: %v", cmd, cerr)
			}
			return
		}
		if enc, _ := c.Encode(); !bytes.Equal(enc[:], cmd) {
			t.Fatalf("command %x re-encodes as %x", cmd, enc)
		}
		_, berr := ParseExitBody(body)
		switch {
		case c.Type == Forward && err != nil:
			t.Fatalf("forward command refused: %v", err)
		case c.Type == Exit && (err == nil) != (berr == nil):
			t.Fatalf("exit: relay says %v, parser says %v", err, berr)
		}
	})
}

func FuzzParseExitBody(f *testing.F) {
	for _, b := range fuzzVectors(f, "ParseExitBody") {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseExitBody(b)
		if err != nil {
			return
		}
		enc, err := e.Encode()
		if err != nil || !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding: %v, equal %v", err, bytes.Equal(enc, b))
		}
	})
}

func FuzzParseReply(f *testing.F) {
	for _, b := range fuzzVectors(f, "ParseReply") {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseReply(b)
		if err != nil {
			return
		}
		enc, err := EncodeReply(r)
		if err != nil || !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding: %v, equal %v", err, bytes.Equal(enc, b))
		}
	})
}

func FuzzParseGuard(f *testing.F) {
	for _, b := range fuzzVectors(f, "ParseGuard") {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := ParseGuard(b)
		if err != nil {
			return
		}
		enc, err := EncodeGuard(g)
		if err != nil || !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding: %v, equal %v", err, bytes.Equal(enc, b))
		}
	})
}
