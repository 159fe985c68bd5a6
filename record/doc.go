// Package record owns the signed mutable records of docs/PROTOCOL.md
// section 15, block type 4: an identity's key log (kind 1: rotations, the
// revocation, the move to a new address), delegation certificates (kind 2)
// and name certificates (kind 3).
//
// Every record verifies standalone (Parse): its layout, its signatures,
// its chain of keys, and the slot it is stored at all follow from its own
// bytes, so a node checks a record on STORE without fetching anything.
// Supersedes is the one rule that decides which of two versions of a slot
// a node keeps; Newest and ResolveKeyLog fold what several nodes answered
// into what a client acts on; KeyState and the Check methods hold a
// certificate against the states a resolver learnt. SafetyCode is the
// number two people compare to verify each other.
//
// Of flowmail it imports block and identity only (and golang.org/x/net/idna
// for names); it does no I/O and reads no clock: times are arguments.
package record
