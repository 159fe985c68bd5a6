// Package onion owns onion routing (docs/PROTOCOL.md section 14): the
// fixed-size relay packet, its layers sealed with the identity suite
// (HPKE MLKEM768-X25519, HKDF-SHA256, ChaCha20-Poly1305), the work stamp
// each layer carries for its relay, single-use reply blocks (SURBs), the
// bodies an exit executes and answers, the relay as a state machine, the
// client that builds requests and opens replies, and path choice with a
// guard.
//
// # Wire layout (section 14.2)
//
//	packet  = version u8 || header [3648] || payload [29119]   (32768 bytes)
//	header  = slot_0 || slot_1 || slot_2
//	slot    = enc [1120] || sealed command [64+16] || stamp [16]
//
// A relay reads slot_0 only: it checks the stamp (one hash, before any
// public-key work), decapsulates enc, opens the command with the rest of
// the header as associated data, then decrypts slots 1..2 with a
// keystream, shifts them forward and appends keystream as the new last
// slot, so the header keeps its length and every hop sees the same shape.
//
// # No I/O
//
// Relay and Client are state machines in the style of etcd's raft: they
// take bytes and the current time and hand back what to send where and
// when (Output). They open no socket, start no goroutine and read no
// clock; randomness comes in through their configs. The node package owns
// the loop that feeds them.
//
// It imports block, identity and the standard library (plus
// golang.org/x/crypto for ChaCha20); it must not import transport,
// kademlia, blockstore, mailbuilder, node, testnet or cmd.
package onion
