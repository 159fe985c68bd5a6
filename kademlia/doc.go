// Package kademlia is the distributed hash table: 256-bit IDs, XOR
// distance, k-buckets with replacement caches, the RPC messages of
// docs/PROTOCOL.md section 8, iterative lookups, storing at the K closest,
// republishing, LIST by ID prefix, and client mode.
//
// The logic opens no socket and reads time only through Config.Clock
// (internal/clock): dates, stall timers and round-trip samples alike, so
// a test that moves the node's clock moves the DHT's. Randomness comes in
// through its Config, and the network through the transport.Transport
// interface. Request timeouts are context deadlines; under
// testing/synctest they, and clock.Real, are virtual, so thousands of
// nodes can be simulated on a virtual clock.
// It may import block, identity, record, blockstore and transport; it
// must not import mail, delivery, mailbox, node, testnet or cmd.
//
// # Pieces
//
//   - wire.go: Encode and Decode of every message (msg_type u8 || body),
//     strict: lengths checked before use, flags 0 or 1, no trailing bytes.
//   - table.go: the routing table. One bucket per common prefix length with
//     the own ID, K live contacts each, least recently seen first, and a
//     replacement cache. A newcomer to a full bucket waits in the cache
//     until the least recently seen contact fails a ping (CheckLiveness) or
//     any request; a contact with no waiting replacement leaves after
//     MaxFailures consecutive failures. Contacts of one IP group (/24,
//     /48) are capped per bucket and per table. Client-mode peers and the
//     node itself never enter, nor does any contact that has not answered
//     or sent a request (verified): contacts heard of in NODES live only
//     in the lookup that heard them. A failure is charged only to the
//     address the table holds. NODES answers name only contacts verified
//     within ContactFreshness whose last request did not fail;
//     CheckLiveness revalidates the others.
//   - addr.go: CheckPeerAddr, the address classes no peer can have
//     (docs/PROTOCOL.md section 8), for NODES, the table and HELLO.
//   - lookup.go: the iterative lookup's decisions, lookupMachine: a value
//     stepped with events (replies, failures, the stall timer,
//     cancellation) and the current time, that says which requests to
//     send, which failures to charge, when to wake it and when it is
//     done; no I/O, no clock. Alpha requests in flight to the closest
//     contacts not yet asked among the K closest that have neither
//     failed nor stalled; it ends when those K have all answered
//     (docs/PROTOCOL.md section 8). A request unanswered for the stall
//     time frees its slot and is charged a failure, but its answer is
//     still used; a contact the table knows as failing is asked as
//     stalled from the start. A peer whose answer names a contact at
//     another node's address, or mostly unreachable ones, is no longer
//     trusted; at most BucketIPLimit contacts of one IP group count
//     among the K closest. testdata/lookup holds its transcripts.
//   - lookuprun.go: the driver: goroutines that carry the machine's
//     requests to the transport and the outcomes back.
//   - stall.go: the stall time, adaptive (RFC 6298's srtt + 4·rttvar of
//     answered lookup requests, 250 ms to 2 s) unless Config fixes it.
//   - handler.go: DHT.Handle, the transport.Handler. A STORE is charged to
//     its sender's node ID and IP group (blockstore.Source); a record
//     refusal has its own ERROR code (10 stale, 11 forked, 12 revoked).
//   - storage.go, list.go: Put, Get, Delete, Republish, List with its
//     prefix sweep.
//   - records.go: records at their slot (docs/PROTOCOL.md 15.4):
//     PutRecord, Records (FIND_BLOCK of the slot at each of the K
//     closest), GetRecord and KeyState (the folds of record.Newest and
//     record.ResolveKeyLog over those answers), RefreshRecord (anyone
//     re-stores the newest version). recordlimit.go: how many records one
//     source may make the handler verify.
//   - maintenance.go: Ping, Bootstrap, Refresh, CheckLiveness.
//   - saved.go: the saved-contacts file, for rejoining without a bootstrap
//     list.
//
// The simulator of thousands of DHTs on the in-memory transport is the
// package kadsim, for the tests of this package and those above it.
//
// # Who runs what
//
// The DHT starts no goroutine of its own: every goroutine a method starts
// (the Alpha requests of a lookup, the K stores of a Put) has returned
// when the method returns. The node package owns the schedule: it calls
// Refresh every few minutes (it only looks up buckets idle for
// RefreshInterval), CheckLiveness more often if it likes, and Republish
// every minute or so (each call handles only the blocks that are due).
package kademlia
