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
// # What the node provides (the wiring)
//
// A relay (every full node) needs its ID and HPKE private key
// (identity.EncryptionKey) in RelayConfig, and a loop that: hands every
// MsgOnion body to ReceiveFrom with the clock's time and the sender's
// source (its address group: at most QueuedPerSource of one source's
// packets wait in the queue) and answers OK, or ERROR 7 for ErrOutbid
// and ErrSourceFull and ERROR 1 for the other refusals; calls Process while
// Pending is non-zero; wakes at Next and sends what Due returns — a
// Forwarded packet as MsgOnion to To (at Addr, or over the existing
// connection when Addr is invalid), an ExitRequest executed through the
// DHT (Put parts through an Assembler, then STORE at the K closest; LIST
// as a recipient does; GET by FIND_BLOCK; RECORD as a record reader does,
// every distinct valid version answered; DELETE at the K closest) and
// answered with its Reply or SealReply per reply block. Stats feeds the
// metrics.
//
// A client (send, fetch, publish, the bridge) needs ClientConfig: its node
// ID (the throwaway client-mode identity), where the guard reaches it
// (usually over its connection), a crypto-seeded Rand; the routing table's
// contacts as Hops with verified pubkey blocks; the guard, kept in the
// data directory with EncodeGuard/ParseGuard and refreshed by KeepGuard;
// paths from ForwardPath and ReplyPath; a connection to the guard kept open
// while answers are due; Receive for every MsgOnion the guard delivers; a
// bounded wait per request (the drawn delays plus a margin) after which it
// marks the guard Failed if the guard did not take the packet, and retries
// on new paths; Expire now and then.
//
// It imports block, identity and the standard library (plus
// golang.org/x/crypto for ChaCha20-Poly1305); it must not import transport,
// kademlia, blockstore, mail, delivery, mailbox, node, testnet or cmd.
package onion
