package onion

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/vectors"
)

const vectorFile = "onion_packets.json"

// vectorCreated is the creation time of every vector identity.
const vectorCreated = 1767225600

func onionErrName(err error) string {
	return vectors.RuleName(err, ErrPacketSize, ErrVersion, ErrStampRelay, ErrStampWork, ErrOutbid,
		ErrLayerMAC, ErrCommand, ErrDelay, ErrEpoch, ErrReplay, ErrReplyReused, ErrReplayFull, ErrHoldFull,
		ErrExitMAC, ErrExitBody, ErrReplyBody, ErrUnknownReply, ErrReplyMAC, ErrSURB, ErrNoSURB, ErrGuardFile)
}

// TestVectors walks testdata/vectors/onion_packets.json. With -update the
// packets are rebuilt under a fixed crypto/rand stream (the KEM draws from
// it), so regenerating gives the same bytes as long as the standard
// library draws its randomness the same way.
func TestVectors(t *testing.T) {
	if *vectors.Update {
		cryptotest.SetGlobalRandom(t, 17)
	}
	var generated *vectors.File
	gen := func() vectors.File {
		f := genVectors(t)
		generated = &f
		return f
	}
	var file *vectors.File
	vectors.Check(t, vectorFile, gen, func(v vectors.Vector) (map[string]string, string) {
		if file == nil {
			file = generated
			if file == nil {
				file = loadVectors(t)
			}
		}
		return checkVector(v, file)
	})
}

func loadVectors(t testing.TB) *vectors.File {
	b, err := os.ReadFile(vectors.Path(vectorFile))
	if err != nil {
		t.Fatalf("reading vectors (regenerate with -update): %v", err)
	}
	var f vectors.File
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return &f
}

func netipMust(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

var netipZero netip.AddrPort

func vectorSeed(n int) [identity.SeedSize]byte {
	var seed [identity.SeedSize]byte
	copy(seed[:], fmt.Sprintf("onion test identity %d", n))
	return seed
}

func vectorIdentity(seedHex string) (*identity.Identity, error) {
	b, err := hex.DecodeString(seedHex)
	if err != nil || len(b) != identity.SeedSize {
		return nil, fmt.Errorf("bad seed %q", seedHex)
	}
	return identity.FromSeed([identity.SeedSize]byte(b), 0, time.Unix(vectorCreated, 0))
}

// checkVector runs one vector. Packet vectors may name a base vector
// whose input they reuse, with a mutation in their params.
func checkVector(v vectors.Vector, f *vectors.File) (map[string]string, string) {
	input := v.Input
	if base := v.Params["base"]; base != "" {
		for _, b := range f.Vectors {
			if b.Name == base {
				input = b.Input
			}
		}
	}
	b, err := hex.DecodeString(input)
	if err != nil {
		return nil, "bad hex"
	}
	if n, ok := v.Params["pad_to"]; ok {
		size, _ := strconv.Atoi(n)
		if len(b) > size {
			return nil, "input longer than pad_to"
		}
		b = append(b, make([]byte, size-len(b))...)
	}
	if x, ok := v.Params["last_byte"]; ok {
		l, _ := hex.DecodeString(x)
		b[len(b)-1] = l[0]
	}
	switch v.Function {
	case "RoundTrip":
		return checkRoundTrip(v, b)
	case "ParseCommand":
		c, err := ParseCommand(b)
		if err != nil {
			return nil, onionErrName(err)
		}
		if enc, _ := c.Encode(); !bytes.Equal(enc[:], b) {
			return nil, "re-encoding differs"
		}
		return map[string]string{"command": describeCommand(c)}, ""
	case "ParseExitBody":
		e, err := ParseExitBody(b)
		if err != nil {
			return nil, onionErrName(err)
		}
		if enc, err := e.Encode(); err != nil || !bytes.Equal(enc, b) {
			return nil, "re-encoding differs"
		}
		return map[string]string{"request": describeRequest(e.Request), "surbs": strconv.Itoa(len(e.SURBs))}, ""
	case "ParseReply":
		r, err := ParseReply(b)
		if err != nil {
			return nil, onionErrName(err)
		}
		if enc, err := EncodeReply(r); err != nil || !bytes.Equal(enc, b) {
			return nil, "re-encoding differs"
		}
		return map[string]string{"reply": describeReply(r)}, ""
	case "ParseGuard":
		g, err := ParseGuard(b)
		if err != nil {
			return nil, onionErrName(err)
		}
		return map[string]string{
			"guard":   g.Hop.ID().String(),
			"addr":    g.Hop.Addr.String(),
			"chosen":  strconv.FormatInt(g.Chosen.Unix(), 10),
			"expires": strconv.FormatInt(g.Expires.Unix(), 10),
		}, ""
	case "StampWork":
		relay, err := block.ParseHexID(v.Params["relay"])
		nonce, err2 := hex.DecodeString(v.Params["nonce"])
		if err != nil || err2 != nil || len(b) != EncSize || len(nonce) != 8 {
			return nil, "bad params"
		}
		return map[string]string{"work": strconv.Itoa(stampWork(relay, b, nonce))}, ""
	}
	return nil, "unknown function " + v.Function
}

// relayOnce is step without a testing.T: receive, open, take the output
// whenever it falls due.
func relayOnce(r *Relay, now time.Time, pkt []byte) (Output, error) {
	if err := r.Receive(now, pkt); err != nil {
		return Output{}, err
	}
	if _, err := r.Process(now); err != nil {
		return Output{}, err
	}
	o, ok := r.Due(now.Add(MaxHopDelay))
	if !ok {
		return Output{}, fmt.Errorf("nothing due")
	}
	return o, nil
}

// checkRoundTrip feeds a request packet through relays 0 to 2, answers
// through the reply block it carries (relays 3 to 5) and opens the answer
// with the client's keys from the params. Params may mutate the run to
// exercise a failure.
func checkRoundTrip(v vectors.Vector, pkt []byte) (map[string]string, string) {
	p := v.Params
	seeds := strings.Split(p["relay_seeds"], ",")
	if len(seeds) != 6 {
		return nil, "want 6 relay seeds"
	}
	minWork, _ := strconv.Atoi(p["min_work"])
	relays := make([]*Relay, 6)
	for i, s := range seeds {
		id, err := vectorIdentity(s)
		if err != nil {
			return nil, err.Error()
		}
		if relays[i], err = NewRelay(RelayConfig{ID: id.ID(), Key: id.EncryptionKey(), MinWork: minWork}); err != nil {
			return nil, err.Error()
		}
	}
	unix, _ := strconv.ParseInt(p["now"], 10, 64)
	now := time.Unix(unix, 0)
	if n, ok := p["truncate"]; ok {
		l, _ := strconv.Atoi(n)
		pkt = pkt[:l]
	}
	if off, ok := p["flip"]; ok {
		o, _ := strconv.Atoi(off)
		pkt = bytes.Clone(pkt)
		pkt[o] ^= 1
	}
	first := relays[0]
	if p["first_relay"] == "1" {
		first = relays[1]
	}
	if p["replay"] == "1" {
		if _, err := relayOnce(first, now, bytes.Clone(pkt)); err != nil {
			return nil, "first copy: " + onionErrName(err)
		}
	}
	out := map[string]string{}
	var exit *ExitRequest
	for i := range 3 {
		r := relays[i]
		if i == 0 {
			r = first
		}
		o, err := relayOnce(r, now, pkt)
		if err != nil {
			return nil, onionErrName(err)
		}
		out[fmt.Sprintf("hop%d_delay_ms", i)] = strconv.FormatInt(o.At.Sub(now).Milliseconds(), 10)
		if o.Forward != nil {
			out[fmt.Sprintf("hop%d_next", i)] = o.Forward.To.String() + " " + o.Forward.Addr.String()
			out[fmt.Sprintf("hop%d_out", i)] = block.Sum(o.Forward.Packet).String()
			pkt = o.Forward.Packet
			continue
		}
		exit = o.Exit
	}
	if exit == nil {
		return nil, "no exit"
	}
	out["exit_request"] = describeRequest(exit.Request)
	out["exit_surbs"] = strconv.Itoa(exit.ReplyBlocks())
	if exit.ReplyBlocks() == 0 {
		return out, ""
	}
	replyBody, _ := hex.DecodeString(p["reply_body"])
	reply, err := ParseReply(append(replyBody, make([]byte, BodySize-len(replyBody))...))
	if err != nil {
		return nil, "bad reply_body: " + err.Error()
	}
	surb := exit.surbs[0]
	f, err := exit.Reply(reply)
	if err != nil {
		return nil, onionErrName(err)
	}
	pkt = f.Packet
	for i := 3; i < 6; i++ {
		o, err := relayOnce(relays[i], now, pkt)
		if err != nil {
			return nil, onionErrName(err)
		}
		out[fmt.Sprintf("reply%d_next", i-3)] = o.Forward.To.String() + " " + o.Forward.Addr.String()
		out[fmt.Sprintf("reply%d_out", i-3)] = block.Sum(o.Forward.Packet).String()
		pkt = o.Forward.Packet
		if i == 3 && p["reply_twice"] == "1" {
			second, err := SealReply(&surb, PingReply{})
			if err != nil {
				return nil, err.Error()
			}
			if _, err := relayOnce(relays[3], now, second); err != nil {
				return nil, onionErrName(err)
			}
			return nil, "second answer through one reply block went through"
		}
	}
	// The client's side: the reply block's name, key and payload keys.
	pending := &pendingReply{}
	key, _ := hex.DecodeString(p["reply_key"])
	keys, _ := hex.DecodeString(p["reply_payload_keys"])
	name, _ := hex.DecodeString(p["reply_name"])
	if len(key) != 32 || len(keys) != 96 || len(name) != 16 {
		return nil, "bad client params"
	}
	copy(pending.key[:], key)
	for i := range 3 {
		pending.payload = append(pending.payload, [32]byte(keys[32*i:]))
	}
	c := &Client{pending: map[[16]byte]*pendingReply{[16]byte(name): pending}}
	got, err := c.Receive(pkt)
	if err != nil {
		return nil, onionErrName(err)
	}
	out["client_reply"] = describeReply(got.Reply)
	return out, ""
}

func describeCommand(c Command) string {
	kind := "forward"
	if c.Type == Exit {
		kind = "exit"
	}
	return fmt.Sprintf("%s epoch=%d delay=%s next=%s addr=%v", kind, c.Epoch, c.Delay, c.Next.Short(), c.Addr)
}

func describeRequest(r Request) string {
	switch r := r.(type) {
	case Put:
		return fmt.Sprintf("put lifetime=%d id=%s total=%d offset=%d chunk=%s", r.Lifetime, r.ID, r.Total, r.Offset, block.Sum(r.Chunk))
	case List:
		return fmt.Sprintf("list target=%s bits=%d since=%d has_after=%v after=%s limit=%d", r.Target, r.Bits, r.Since, r.HasAfter, r.After.Short(), r.Limit)
	case Get:
		return fmt.Sprintf("get id=%s offset=%d", r.ID, r.Offset)
	case Record:
		return fmt.Sprintf("record slot=%s", r.Slot)
	case Delete:
		return fmt.Sprintf("delete id=%s preimage=%x", r.ID, r.Preimage)
	}
	return r.Kind().String()
}

func describeReply(r Reply) string {
	switch r := r.(type) {
	case ErrorReply:
		return fmt.Sprintf("%v error %d", r.Request, r.Code)
	case PutReply:
		return fmt.Sprintf("put stored=%d", r.Stored)
	case ListReply:
		var b strings.Builder
		fmt.Fprintf(&b, "list more=%v", r.More)
		for _, e := range r.Entries {
			fmt.Fprintf(&b, " %s@%d", e.ID.Short(), e.StoredAt)
		}
		return b.String()
	case GetReply:
		return fmt.Sprintf("get total=%d offset=%d chunk=%s", r.Total, r.Offset, block.Sum(r.Chunk))
	case DeleteReply:
		return fmt.Sprintf("delete deleted=%d", r.Deleted)
	case RecordReply:
		var b strings.Builder
		fmt.Fprintf(&b, "record more=%v", r.More)
		for _, rec := range r.Records {
			fmt.Fprintf(&b, " %d:%s", len(rec), block.Sum(rec).Short())
		}
		return b.String()
	}
	return r.Kind().String()
}

// genVectors builds the vector file. The round-trip packet comes from a
// Client whose delays and whose crypto/rand stream are seeded.
func genVectors(t *testing.T) vectors.File {
	now := time.Unix(1796126400, 0) // 2026-12-01T12:00:00Z
	var seeds []string
	var rs []*testRelay
	for i := range 6 {
		s := vectorSeed(i)
		seeds = append(seeds, hex.EncodeToString(s[:]))
		rs = append(rs, newTestRelay(t, i))
	}
	client, err := NewClient(ClientConfig{ID: testIdentity(t, 100).ID(), Work: testWork, Rand: mrand.New(mrand.NewPCG(1, 2))})
	if err != nil {
		t.Fatal(err)
	}
	get := Get{ID: block.Sum([]byte("a shard")), Offset: 29089}
	sent, err := client.Send(now, get, hops(rs[0], rs[1], rs[2]), hops(rs[3], rs[4], rs[5]), 1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var name [16]byte
	var pend *pendingReply
	for n, p := range client.pending {
		name, pend = n, p
	}
	var keys []byte
	for _, k := range pend.payload {
		keys = append(keys, k[:]...)
	}
	replyBody, err := EncodeReply(GetReply{Total: 100000, Offset: 29089, Chunk: vectors.Pattern(1000, 7)})
	if err != nil {
		t.Fatal(err)
	}
	params := func(extra ...string) map[string]string {
		m := map[string]string{
			"relay_seeds":        strings.Join(seeds, ","),
			"now":                strconv.FormatInt(now.Unix(), 10),
			"min_work":           strconv.Itoa(testWork),
			"reply_body":         hex.EncodeToString(bytes.TrimRight(replyBody, "\x00")),
			"reply_key":          hex.EncodeToString(pend.key[:]),
			"reply_payload_keys": hex.EncodeToString(keys),
			"reply_name":         hex.EncodeToString(name[:]),
		}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	// derived vectors reuse the round trip's packet with one mutation.
	derived := func(extra ...string) map[string]string {
		return params(append(extra, "base", "round_trip")...)
	}
	pktHex := hex.EncodeToString(sent.First.Packet)
	badCmd := func() string {
		specs := forwardSpecs(t, rs[:3], 0)
		c, _ := ParseCommand(specs[0].cmd)
		c.Epoch = EpochOf(now)
		raw, _ := c.Encode()
		raw[63] = 1
		specs[0].cmd = raw[:]
		return hex.EncodeToString(rawPacket(t, specs, pingBody(t)))
	}()

	vs := []vectors.Vector{
		{Name: "round_trip", Function: "RoundTrip", Input: pktHex, Params: params(),
			Note: "a GET through relays 0,1,2 (the client's delays drawn with mean 5 s), answered through its one reply block over relays 3,4,5 back to the client (14.5 to 14.7); *_out are H(H(packet handed on))"},
		{Name: "wrong_size", Function: "RoundTrip", Params: derived("truncate", strconv.Itoa(PacketSize-1)), Error: "packet is not PacketSize bytes", Note: "14.5 step 1"},
		{Name: "bad_command_tag", Function: "RoundTrip", Params: derived("flip", strconv.Itoa(headerOffset+sealedOffset+10)), Error: "layer does not authenticate", Note: "14.5 step 4: the sealed command altered"},
		{Name: "bad_header_tag", Function: "RoundTrip", Params: derived("flip", strconv.Itoa(headerOffset+SlotSize+500)), Error: "layer does not authenticate", Note: "14.5 step 4: slot 1, under the tag as associated data, altered"},
		{Name: "stamp_other_relay", Function: "RoundTrip", Params: derived("first_relay", "1"), Error: "stamp bound to another relay", Note: "14.5 step 2: the packet for relay 0 given to relay 1"},
		{Name: "stamp_too_little_work", Function: "RoundTrip", Params: derived("min_work", "40"), Error: "stamp carries too little work", Note: "14.5 step 2 at a relay demanding 40 bits"},
		{Name: "epoch_past_window", Function: "RoundTrip", Params: derived("now", strconv.FormatInt(now.Add(2*Epoch).Unix(), 10)), Error: "epoch outside the window", Note: "14.5 step 6: two epochs later"},
		{Name: "replay", Function: "RoundTrip", Params: derived("replay", "1"), Error: "replayed packet", Note: "14.5 step 7: the same packet twice at relay 0"},
		{Name: "payload_altered", Function: "RoundTrip", Params: derived("flip", strconv.Itoa(payloadOffset+100)), Error: "exit body does not authenticate", Note: "14.5 step 9: relays 0 and 1 pass it (their tags cover the header), the exit's end-to-end tag fails"},
		{Name: "reply_block_reused", Function: "RoundTrip", Params: derived("reply_twice", "1"), Error: "reply block used twice", Note: "14.5 step 7: a second answer through the same reply block at reply relay 3"},
		{Name: "command_reserved_set", Function: "RoundTrip", Input: badCmd, Params: params(), Error: "malformed command", Note: "14.3: a well-sealed command with a reserved byte set, at relay 0"},
	}
	vs = append(vs, commandVectors(now)...)
	vs = append(vs, bodyVectors()...)
	vs = append(vs, replyVectors()...)
	vs = append(vs, guardVectors(t)...)
	enc := make([]byte, EncSize)
	for i := range enc {
		enc[i] = byte(i * 13)
	}
	vs = append(vs, vectors.Vector{Name: "stamp_work", Function: "StampWork", Input: hex.EncodeToString(enc),
		Params: map[string]string{"relay": testIdentity(t, 0).ID().String(), "nonce": "0000000000000000"}, Note: "14.4"})
	return vectors.File{
		Description: "Onion routing (docs/PROTOCOL.md section 14). Relay seeds are identity seeds (section 10), difficulty 0, created 1767225600. Vectors with a base reuse its input; pad_to appends zero bytes to the input, last_byte then sets the last one.",
		Vectors:     vs,
	}
}

func commandVectors(now time.Time) []vectors.Vector {
	good := Command{Type: Forward, Epoch: EpochOf(now), Delay: 1500 * time.Millisecond, Next: block.ID{0xaa, 1}, Addr: testAddr(3)}
	raw, _ := good.Encode()
	v4 := good
	v4.Addr = netipMust("192.0.2.7:4433")
	raw4, _ := v4.Encode()
	exit := Command{Type: Exit, Epoch: EpochOf(now), Delay: MaxHopDelay}
	rawExit, _ := exit.Encode()
	none := good
	none.Addr = netipZero
	rawNone, _ := none.Encode()
	mut := func(base [CommandSize]byte, f func(b []byte)) string {
		b := base
		f(b[:])
		return hex.EncodeToString(b[:])
	}
	pc := func(name, input, errName, note string) vectors.Vector {
		return vectors.Vector{Name: "command_" + name, Function: "ParseCommand", Input: input, Error: errName, Note: note}
	}
	return []vectors.Vector{
		pc("forward_ipv6", hex.EncodeToString(raw[:]), "", "14.3"),
		pc("forward_ipv4", hex.EncodeToString(raw4[:]), "", "14.3: IPv4 in the first 4 bytes"),
		pc("forward_existing_connection", hex.EncodeToString(rawNone[:]), "", "14.3: family 0"),
		pc("exit", hex.EncodeToString(rawExit[:]), "", "14.3: delay MaxHopDelay is allowed"),
		pc("short", hex.EncodeToString(raw[:63]), "malformed command", "64 bytes"),
		pc("type_0", mut(raw, func(b []byte) { b[0] = 0 }), "malformed command", "type 1 or 2"),
		pc("type_3", mut(raw, func(b []byte) { b[0] = 3 }), "malformed command", "type 1 or 2"),
		pc("flags", mut(raw, func(b []byte) { b[1] = 1 }), "malformed command", "flags MUST be 0"),
		pc("reserved", mut(raw, func(b []byte) { b[62] = 1 }), "malformed command", "reserved MUST be 0"),
		pc("delay_above_max", mut(raw, func(b []byte) { binary.BigEndian.PutUint32(b[6:], 600001) }), "delay above MaxHopDelay", "delay at most MaxHopDelay"),
		pc("forward_to_zero", mut(rawNone, func(b []byte) { clear(b[10:42]) }), "malformed command", "forward names a non-zero next"),
		pc("exit_with_next", mut(rawExit, func(b []byte) { b[10] = 1 }), "malformed command", "exit: next zero"),
		pc("exit_with_addr", mut(rawExit, func(b []byte) { copy(b[42:], raw[42:61]) }), "malformed command", "exit: addr zero"),
		pc("family_5", mut(raw, func(b []byte) { b[42] = 5 }), "malformed command", "family 0, 4 or 6"),
		pc("ipv4_padding", mut(raw4, func(b []byte) { b[50] = 1 }), "malformed command", "IPv4: rest of ip zero"),
		pc("port_0", mut(raw, func(b []byte) { b[59], b[60] = 0, 0 }), "malformed command", "port not 0"),
		pc("ipv6_unspecified", mut(raw, func(b []byte) { clear(b[43:59]) }), "malformed command", "IP not unspecified"),
		pc("ipv4_mapped", mut(raw, func(b []byte) { clear(b[43:59]); b[53], b[54], b[55] = 0xff, 0xff, 1 }), "malformed command", "family 6 not IPv4-mapped"),
		pc("family_0_with_bytes", mut(rawNone, func(b []byte) { b[60] = 1 }), "malformed command", "family 0: all 19 bytes zero"),
	}
}

func bodyVectors() []vectors.Vector {
	surb := SURB{FirstHop: block.ID{0x5a}, Addr: netipMust("192.0.2.9:4433"), Key: [32]byte{7}}
	copy(surb.Header[:], vectors.Pattern(HeaderSize, 3))
	enc := func(e *ExitBody) []byte {
		b, err := e.Encode()
		if err != nil {
			panic(err)
		}
		return bytes.TrimRight(b, "\x00")
	}
	put := enc(&ExitBody{Request: Put{Lifetime: 86400, ID: block.ID{1}, Total: 5000, Offset: 4000, Chunk: vectors.Pattern(1000, 1)}})
	list := enc(&ExitBody{Request: List{Target: block.ID{2}, Bits: 22, Since: 1796000000, HasAfter: true, After: block.ID{2, 9}, Limit: 1000}})
	get := enc(&ExitBody{Request: Get{ID: block.ID{3}, Offset: 29089}})
	ping := enc(&ExitBody{Request: Ping{}, SURBs: []SURB{surb}})
	rec := enc(&ExitBody{Request: Record{Slot: block.ID{4, 4}}, SURBs: []SURB{surb}})
	del := enc(&ExitBody{Request: Delete{ID: block.ID{5}, Preimage: [32]byte{6, 6}}, SURBs: []SURB{surb}})
	drop := []byte{byte(KindDrop), 0}
	pad := map[string]string{"pad_to": strconv.Itoa(BodySize)}
	pv := func(name string, b []byte, errName, note string) vectors.Vector {
		return vectors.Vector{Name: "body_" + name, Function: "ParseExitBody", Input: hex.EncodeToString(b), Params: pad, Error: errName, Note: note}
	}
	mut := func(b []byte, f func(b []byte)) []byte { c := bytes.Clone(b); f(c); return c }
	const fieldsAt = 2 // no reply blocks before the fields
	return []vectors.Vector{
		pv("put", put, "", "14.9"),
		pv("list", list, "", "14.9"),
		pv("get", get, "", "14.9"),
		pv("ping", ping, "", "14.9"),
		pv("drop", drop, "", "14.9"),
		pv("record", rec, "", "14.9"),
		pv("delete", del, "", "14.9"),
		{Name: "body_short", Function: "ParseExitBody", Input: hex.EncodeToString(ping), Error: "malformed exit body", Note: "BodySize bytes"},
		{Name: "body_padding", Function: "ParseExitBody", Input: hex.EncodeToString(ping), Params: map[string]string{"pad_to": strconv.Itoa(BodySize), "last_byte": "01"}, Error: "malformed exit body", Note: "padding MUST be zero"},
		pv("kind_8", mut(drop, func(b []byte) { b[0] = 8 }), "malformed exit body", "kind 1 to 7"),
		pv("kind_0", mut(drop, func(b []byte) { b[0] = 0 }), "malformed exit body", "kind 1 to 7"),
		pv("eight_surbs", mut(drop, func(b []byte) { b[0], b[1] = byte(KindPing), 8 }), "malformed exit body", "at most MaxSURBs"),
		pv("drop_with_surb", mut(ping, func(b []byte) { b[0] = byte(KindDrop) }), "malformed exit body", "DROP carries no reply block"),
		pv("surb_zero_first_hop", mut(ping, func(b []byte) { clear(b[2:34]) }), "malformed reply block", "first_hop non-zero"),
		pv("surb_no_address", mut(ping, func(b []byte) { clear(b[34:53]) }), "malformed reply block", "addr family 4 or 6"),
		pv("put_lifetime_0", mut(put, func(b []byte) { clear(b[fieldsAt : fieldsAt+4]) }), "malformed exit body", "lifetime 1 to MaxLifetime"),
		pv("put_total_above_max", mut(put, func(b []byte) { binary.BigEndian.PutUint32(b[fieldsAt+36:], block.MaxBlockSize+1) }), "malformed exit body", "total at most MaxBlockSize"),
		pv("put_chunk_past_total", mut(put, func(b []byte) { binary.BigEndian.PutUint32(b[fieldsAt+40:], 4001) }), "malformed exit body", "offset + chunk_len <= total"),
		pv("put_chunk_past_body", mut(put, func(b []byte) {
			binary.BigEndian.PutUint32(b[fieldsAt+36:], block.MaxBlockSize)
			binary.BigEndian.PutUint32(b[fieldsAt+44:], 100000)
		}), "malformed exit body", "the chunk lies within the body"),
		pv("list_has_after_2", mut(list, func(b []byte) { b[fieldsAt+41] = 2 }), "malformed exit body", "has_after 0 or 1"),
		pv("list_after_without_flag", mut(list, func(b []byte) { b[fieldsAt+41] = 0 }), "malformed exit body", "after zero when has_after is 0"),
		pv("list_bits_255", mut(list, func(b []byte) { b[fieldsAt+32] = 255 }), "malformed exit body", "bits 0 to 255 exclusive"),
		pv("get_offset_past_max", mut(get, func(b []byte) { binary.BigEndian.PutUint32(b[fieldsAt+32:], block.MaxBlockSize) }), "malformed exit body", "offset < MaxBlockSize"),
	}
}

func replyVectors() []vectors.Vector {
	enc := func(r Reply) []byte {
		b, err := EncodeReply(r)
		if err != nil {
			panic(err)
		}
		return bytes.TrimRight(b, "\x00")
	}
	pad := map[string]string{"pad_to": strconv.Itoa(BodySize)}
	rv := func(name string, b []byte, errName, note string) vectors.Vector {
		return vectors.Vector{Name: "reply_" + name, Function: "ParseReply", Input: hex.EncodeToString(b), Params: pad, Error: errName, Note: note}
	}
	mut := func(b []byte, f func(b []byte)) []byte { c := bytes.Clone(b); f(c); return c }
	list := enc(ListReply{Entries: []ListEntry{{ID: block.ID{1}, StoredAt: 1796000000}, {ID: block.ID{2}, StoredAt: 1796000001}}, More: true})
	get := enc(GetReply{Total: 5000, Offset: 4000, Chunk: vectors.Pattern(1000, 4)})
	recs := enc(RecordReply{Records: [][]byte{vectors.Pattern(1500, 5), vectors.Pattern(block.MaxRecordSize, 6)}, More: true})
	var full [][]byte
	for i := range MaxRecordReply {
		full = append(full, vectors.Pattern(block.MaxRecordSize, byte(10+i)))
	}
	fullRecs := enc(RecordReply{Records: full})
	const recAt = 3 // kind, status, count: the first record's length
	return []vectors.Vector{
		rv("put", []byte{byte(KindPut), 0, 17}, "", "14.9"),
		rv("list", list, "", "14.9"),
		rv("get", get, "", "14.9"),
		rv("ping", []byte{byte(KindPing), 0}, "", "14.9"),
		rv("error", []byte{byte(KindGet), 4}, "", "14.9: status is a section 8 error code"),
		rv("kind_drop", []byte{byte(KindDrop), 0}, "malformed reply body", "DROP has no answer"),
		rv("record", recs, "", "14.9"),
		rv("record_none", []byte{byte(KindRecord), 0, 0, 0}, "", "14.9: no version held"),
		rv("record_seven_largest", fullRecs, "", "14.9: MaxRecordReply records of MaxRecordSize fit"),
		rv("record_eight", mut(recs, func(b []byte) { b[2] = MaxRecordReply + 1 }), "malformed reply body", "count at most MaxRecordReply (7)"),
		rv("record_len_0", mut(recs, func(b []byte) { b[recAt], b[recAt+1] = 0, 0 }), "malformed reply body", "record length 1 to MaxRecordSize"),
		rv("record_len_above_max", mut(recs, func(b []byte) { binary.BigEndian.PutUint16(b[recAt:], block.MaxRecordSize+1) }), "malformed reply body", "record length 1 to MaxRecordSize"),
		rv("record_more_2", mut(recs, func(b []byte) { b[len(b)-1] = 2 }), "malformed reply body", "more 0 or 1"),
		rv("delete", []byte{byte(KindDelete), 0, 3}, "", "14.9"),
		rv("kind_8", []byte{8, 0}, "malformed reply body", "kind 1 to 4, 6 or 7"),
		rv("error_with_fields", []byte{byte(KindGet), 4, 1}, "malformed reply body", "no fields after an error status"),
		rv("list_728", mut(list, func(b []byte) { binary.BigEndian.PutUint16(b[2:], MaxListReply+1) }), "malformed reply body", "count at most 727"),
		rv("list_more_2", mut(list, func(b []byte) { b[len(b)-1] = 2 }), "malformed reply body", "more 0 or 1"),
		rv("get_chunk_0", mut(get, func(b []byte) { clear(b[10:14]) }), "malformed reply body", "chunk_len at least 1"),
		rv("get_past_total", mut(get, func(b []byte) { binary.BigEndian.PutUint32(b[6:], 4001) }), "malformed reply body", "offset + chunk_len <= total"),
		rv("get_total_0", mut(get, func(b []byte) { clear(b[2:6]) }), "malformed reply body", "total 1 to MaxBlockSize"),
	}
}

func guardVectors(t *testing.T) []vectors.Vector {
	g := &Guard{Hop: Hop{Pubkey: testIdentity(t, 7).Public(), Addr: netipMust("192.0.2.1:4433")},
		Chosen: time.Unix(1796126400, 0), Expires: time.Unix(1796126400+12*86400, 0)}
	good, err := EncodeGuard(g)
	if err != nil {
		t.Fatal(err)
	}
	mut := func(f func(b []byte)) string { b := bytes.Clone(good); f(b); return hex.EncodeToString(b) }
	at := len(guardMagic) + block.PubkeySize
	gv := func(name, input, errName, note string) vectors.Vector {
		return vectors.Vector{Name: "guard_" + name, Function: "ParseGuard", Input: input, Error: errName, Note: note}
	}
	return []vectors.Vector{
		gv("file", hex.EncodeToString(good), "", "14.10"),
		gv("short", hex.EncodeToString(good[:len(good)-1]), "malformed guard file", "exact length"),
		gv("magic", mut(func(b []byte) { b[0] = 'F' }), "malformed guard file", "magic"),
		gv("signature", mut(func(b []byte) { b[at-1] ^= 1 }), "malformed guard file", "pubkey block verifies"),
		gv("no_address", mut(func(b []byte) { clear(b[at : at+addrSize]) }), "malformed guard file", "address family 4 or 6"),
		gv("expires_before_chosen", mut(func(b []byte) { copy(b[at+addrSize+8:], b[at+addrSize:at+addrSize+8]) }), "malformed guard file", "chosen < expires"),
		gv("lifetime_too_long", mut(func(b []byte) {
			binary.BigEndian.PutUint64(b[at+addrSize+8:], uint64(1796126400+21*86400))
		}), "malformed guard file", "expires <= chosen + 20 days"),
	}
}
