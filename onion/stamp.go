package onion

import (
	"crypto/sha512"
	"encoding"
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/flowmail/flowmail/block"
)

// A stamp is relay [8] || nonce [8]. Its work is the number of leading
// zero bits of
//
//	LH("flowmail/v1 onion stamp", relay_id [32] || enc [1120] || nonce [8])
//
// so it is bound to one relay (its full ID) and one layer (the layer's
// encapsulation, fresh for every layer). The relay field repeats the first
// 8 bytes of the ID only so that a stamp for another relay is told apart
// from a weak one.

// stampWork returns the work of nonce for relay and enc.
func stampWork(relay block.ID, enc []byte, nonce []byte) int {
	sum := block.LabeledHash(labelStamp, relay[:], enc, nonce)
	return leadingZeros(sum[:])
}

func leadingZeros(b []byte) int {
	n := 0
	for _, x := range b {
		if x != 0 {
			return n + bits.LeadingZeros8(x)
		}
		n += 8
	}
	return n
}

// checkStamp returns the work of a layer's stamp for relay self, or why it
// does not count: bound to another relay, or below min.
func checkStamp(self block.ID, enc, stamp []byte, min int) (int, error) {
	if [8]byte(stamp[:8]) != [8]byte(self[:8]) {
		return 0, fmt.Errorf("%w: stamp names %x, this relay is %x", ErrStampRelay, stamp[:8], self[:8])
	}
	w := stampWork(self, enc, stamp[8:16])
	if w < min {
		return w, fmt.Errorf("%w: %d bits, %d wanted", ErrStampWork, w, min)
	}
	return w, nil
}

// solveStamp grinds nonces from 0 until the stamp for relay and enc has
// at least work bits. It hashes the fixed prefix once and restores that
// state per trial; 2^work trials are expected.
func solveStamp(relay block.ID, enc []byte, work int) [StampSize]byte {
	var st [StampSize]byte
	copy(st[:8], relay[:8])
	h := sha512.New512_256()
	h.Write([]byte{byte(len(labelStamp))})
	h.Write([]byte(labelStamp))
	h.Write(relay[:])
	h.Write(enc)
	prefix, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic("onion: sha512 state does not marshal: " + err.Error()) // stdlib contract
	}
	var sum [32]byte
	for nonce := uint64(0); ; nonce++ {
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(prefix); err != nil {
			panic("onion: sha512 state does not unmarshal: " + err.Error())
		}
		binary.BigEndian.PutUint64(st[8:], nonce)
		h.Write(st[8:])
		if leadingZeros(h.Sum(sum[:0])) >= work {
			return st
		}
	}
}
