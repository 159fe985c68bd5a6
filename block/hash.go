package block

import "crypto/sha512"

// Labels separate every hash and signature use of the protocol. No label is
// a prefix of another once its length byte is counted.
const (
	LabelDeletion = "flowmail/v1 deletion"
	LabelPubkey   = "flowmail/v1 pubkey"
	LabelIndex    = "flowmail/v1 index"
	LabelMail     = "flowmail/v1 mail"
	LabelEnvelope = "flowmail/v1 envelope"
	LabelRecord   = "flowmail/v1 record"
	LabelNextKey  = "flowmail/v1 next key"
)

// LabeledHash is SHA-512/256(u8(len(label)) || label || data).
func LabeledHash(label string, data ...[]byte) [32]byte {
	h := sha512.New512_256()
	h.Write([]byte{byte(len(label))})
	h.Write([]byte(label))
	for _, d := range data {
		h.Write(d)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// SignedMessage is the exact byte string an Ed25519 signature covers:
// u8(len(label)) || label || data. Signing the framed label keeps a
// signature made for one purpose from verifying for another.
func SignedMessage(label string, data []byte) []byte {
	m := make([]byte, 0, 1+len(label)+len(data))
	m = append(m, byte(len(label)))
	m = append(m, label...)
	return append(m, data...)
}

// DeletionHash is the value a block header carries for a deletion preimage.
func DeletionHash(preimage [32]byte) [32]byte {
	return LabeledHash(LabelDeletion, preimage[:])
}
