// Package pow grinds and checks the proof of work of index blocks
// (docs/PROTOCOL.md, "Proof of work"): the last 8 bytes of the block are a
// nonce, and a block is valid for a target when its ID shares at least D
// leading bits with the target ID.
//
// It imports only block and the standard library; it knows nothing of
// storage, the network or mail.
package pow
