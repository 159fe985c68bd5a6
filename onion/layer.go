package onion

import (
	"crypto/cipher"
	"crypto/hpke"
	"crypto/rand"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/flowmail/flowmail/block"
)

// The identity suite (section 4.2): every layer is an HPKE base-mode
// context to the relay's enc_key.
var (
	layerKDF  = hpke.HKDFSHA256()
	layerAEAD = hpke.ChaCha20Poly1305()
	layerInfo = append([]byte(labelLayer), Version)
)

// layerKeys are the symmetric keys one layer's shared secret gives,
// exported from its HPKE context as one 112-byte string
// header [32] || payload [32] || exit [32] || replay tag [16].
type layerKeys struct {
	header  [32]byte // ChaCha20 keystream over the rest of the header and the filler
	payload [32]byte // ChaCha20 keystream over the payload
	exit    [32]byte // ChaCha20-Poly1305 key of the exit body (used by exits only)
	tag     [16]byte // replay tag
}

const layerKeysSize = 32 + 32 + 32 + 16

type exporter interface {
	Export(exporterContext string, length int) ([]byte, error)
}

func exportKeys(e exporter) (layerKeys, error) {
	var k layerKeys
	b, err := e.Export(labelKeys, layerKeysSize)
	if err != nil {
		return k, fmt.Errorf("onion: exporting layer keys: %w", err)
	}
	copy(k.header[:], b[0:32])
	copy(k.payload[:], b[32:64])
	copy(k.exit[:], b[64:96])
	copy(k.tag[:], b[96:112])
	return k, nil
}

var zeroNonce [chacha20poly1305.NonceSize]byte

// newAEAD returns ChaCha20-Poly1305 under key.
func newAEAD(key *[32]byte) cipher.AEAD {
	a, err := chacha20poly1305.New(key[:])
	if err != nil {
		panic("onion: chacha20poly1305 refuses a 32-byte key: " + err.Error())
	}
	return a
}

// S(key, n) is the ChaCha20 keystream ChaCha20-Poly1305 encrypts with:
// zero nonce, block counter 1. It is computed by the AEAD's Seal, whose
// amd64 assembly runs about three times as fast as x/crypto/chacha20
// (portable Go only); the tag it appends is dropped.

// keystream XORs S(key, len(src)) into dst from src.
func keystream(key *[32]byte, dst, src []byte) {
	buf := make([]byte, 0, len(src)+TagSize)
	copy(dst, newAEAD(key).Seal(buf, zeroNonce[:], src, nil)[:len(src)])
}

// shiftHeader computes the header a layer hands on: the rest of the
// header after slot 0, followed by SlotSize zero bytes, XORed with
// S(k_header). dst must have TagSize bytes of capacity past HeaderSize,
// which it overwrites; dst and rest may not overlap.
func shiftHeader(key *[32]byte, dst, rest []byte) {
	if cap(dst) < HeaderSize+TagSize {
		panic("onion: shiftHeader without room for the tag") // Seal would write elsewhere
	}
	n := copy(dst[:HeaderSize], rest)
	clear(dst[n:HeaderSize])
	newAEAD(key).Seal(dst[:0], zeroNonce[:], dst[:HeaderSize], nil)
}

// headerKeystream returns S(k_header, HeaderSize).
func headerKeystream(key *[32]byte) []byte {
	s := make([]byte, HeaderSize)
	keystream(key, s, s)
	return s
}

// sealBody and openBody are the end-to-end AEAD of exit bodies and reply
// bodies: ChaCha20-Poly1305, nonce zero (each key seals one body), no
// associated data.
func sealBody(key *[32]byte, body []byte) []byte {
	return newAEAD(key).Seal(make([]byte, 0, PayloadSize), zeroNonce[:], body, nil)
}

func openBody(key *[32]byte, sealed []byte) ([]byte, bool) {
	b, err := newAEAD(key).Open(nil, zeroNonce[:], sealed, nil)
	return b, err == nil
}

// hopSpec is one layer a builder seals.
type hopSpec struct {
	id   block.ID
	key  hpke.PublicKey
	cmd  []byte // CommandSize bytes (raw, so tests can seal malformed ones)
	work int    // stamp work to grind
}

// built is a header and the keys of its layers, in path order.
type built struct {
	header []byte      // HeaderSize
	keys   []layerKeys // one per hop
	// last is the header the last hop hands on: for a reply block, what
	// the client receives, whose first 16 bytes name the block.
	last []byte
}

// buildHeader seals len(hops) (1 to Hops) layers. Randomness (the
// encapsulations, and the unused slots of a short path) comes from
// crypto/rand.
func buildHeader(hops []hopSpec) (*built, error) {
	n := len(hops)
	if n < 1 || n > Hops {
		return nil, fmt.Errorf("onion: a path has 1 to %d hops, not %d", Hops, n)
	}
	senders := make([]*hpke.Sender, n)
	encs := make([][]byte, n)
	stamps := make([][StampSize]byte, n)
	b := &built{keys: make([]layerKeys, n)}
	for i, h := range hops {
		if len(h.cmd) != CommandSize {
			return nil, fmt.Errorf("onion: command of %d bytes", len(h.cmd))
		}
		if h.work < 0 || h.work > maxBuildWork {
			return nil, fmt.Errorf("onion: stamp work %d outside 0..%d", h.work, maxBuildWork)
		}
		enc, s, err := hpke.NewSender(h.key, layerKDF, layerAEAD, layerInfo)
		if err != nil {
			return nil, fmt.Errorf("onion: encapsulating to hop %d: %w", i, err)
		}
		if len(enc) != EncSize {
			return nil, fmt.Errorf("onion: hop %d key is not MLKEM768-X25519 (enc of %d bytes)", i, len(enc))
		}
		if b.keys[i], err = exportKeys(s); err != nil {
			return nil, err
		}
		senders[i], encs[i] = s, enc
		stamps[i] = solveStamp(h.id, enc, h.work)
	}

	// filler: the last i slots of the header hop i receives were appended
	// by hops 0..i-1 as keystream and decrypted by each hop after.
	var filler []byte
	for i := 0; i < n-1; i++ {
		s := headerKeystream(&b.keys[i].header)
		filler = append(filler, make([]byte, SlotSize)...)
		xorInto(filler, s[(Hops-i-1)*SlotSize:])
	}

	rest := make([]byte, (Hops-1)*SlotSize)
	if _, err := rand.Read(rest[:(Hops-n)*SlotSize]); err != nil {
		return nil, fmt.Errorf("onion: reading randomness: %w", err)
	}
	copy(rest[(Hops-n)*SlotSize:], filler)

	h := make([]byte, HeaderSize)
	for i := n - 1; i >= 0; i-- {
		aad := append(stamps[i][:], rest...)
		sealed, err := senders[i].Seal(aad, hops[i].cmd)
		if err != nil {
			return nil, fmt.Errorf("onion: sealing hop %d: %w", i, err)
		}
		copy(h[encOffset:], encs[i])
		copy(h[sealedOffset:], sealed)
		copy(h[stampOffset:], stamps[i][:])
		copy(h[SlotSize:], rest)
		if i == n-1 {
			b.last = make([]byte, HeaderSize, HeaderSize+TagSize)
			shiftHeader(&b.keys[i].header, b.last, rest)
			b.last = b.last[:HeaderSize]
		}
		if i > 0 {
			// rest_{i-1} = h_i[0:(Hops-1)·SlotSize] XOR S_{i-1}: what hop
			// i-1 decrypts into h_i (the tail of h_i is its filler).
			s := headerKeystream(&b.keys[i-1].header)
			for j := range rest {
				rest[j] = h[j] ^ s[j]
			}
		}
	}
	b.header = h
	return b, nil
}

// maxBuildWork bounds the stamp work a builder grinds: past it a single
// layer takes hours.
const maxBuildWork = 40

func xorInto(dst, src []byte) {
	for i := range dst {
		dst[i] ^= src[i]
	}
}

// layerOpen is what a relay learns from slot 0 of a packet.
type layerOpen struct {
	cmd  Command
	keys layerKeys
}

// openLayer decapsulates slot 0 of pkt (PacketSize bytes, version
// checked) with key and authenticates its command over the stamp and the
// rest of the header. Nothing of the layer is used before the tag checks.
func openLayer(key hpke.PrivateKey, pkt []byte) (layerOpen, error) {
	var l layerOpen
	slot := pkt[headerOffset : headerOffset+SlotSize]
	r, err := hpke.NewRecipient(slot[encOffset:encOffset+EncSize], key, layerKDF, layerAEAD, layerInfo)
	if err != nil {
		return l, fmt.Errorf("%w: decapsulation: %v", ErrLayerMAC, err)
	}
	aad := pkt[headerOffset+stampOffset : headerOffset+HeaderSize] // stamp || rest
	cmd, err := r.Open(aad, slot[sealedOffset:sealedOffset+SealedCommandSize])
	if err != nil {
		return l, ErrLayerMAC
	}
	if l.keys, err = exportKeys(r); err != nil {
		return l, err
	}
	if l.cmd, err = ParseCommand(cmd); err != nil {
		return l, err
	}
	return l, nil
}

// newPacket returns a PacketSize buffer with room for the tag peel's
// streams append past it.
func newPacket() []byte { return make([]byte, PacketSize, PacketSize+TagSize) }

// peel writes into out (from newPacket) the packet the next hop gets: the
// shifted header and the payload with this layer's keystream removed.
func peel(k *layerKeys, pkt, out []byte) {
	if cap(out) < PacketSize+TagSize {
		panic("onion: peel without room for the tag") // Seal would write elsewhere
	}
	out[0] = Version
	// The header's stream appends its tag over the payload's first bytes,
	// which the payload's stream then writes; the payload's tag lands in
	// the spare capacity.
	shiftHeader(&k.header, out[headerOffset:], pkt[headerOffset+SlotSize:payloadOffset])
	newAEAD(&k.payload).Seal(out[payloadOffset:payloadOffset], zeroNonce[:], pkt[payloadOffset:], nil)
}
