// Package kademlia is the distributed hash table: 256-bit IDs, XOR
// distance, k-buckets with replacement caches, the RPC messages of
// docs/PROTOCOL.md section 8, iterative lookups, storing at the K closest,
// republishing, LIST by ID prefix, and client mode.
//
// The logic reads no clock and opens no socket: time and randomness come
// in through its Config, and the network through the transport.Transport
// interface, so thousands of nodes can be simulated on a virtual clock.
// It may import block, identity, blockstore and transport; it must not
// import mailbuilder, node, testnet or cmd.
package kademlia
