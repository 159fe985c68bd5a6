// Package transport moves framed request/response payloads between
// flowmail nodes: over QUIC (quic-go) with mutual TLS 1.3 on each node's
// Ed25519 key, the pubkey-block handshake that binds a connection to a node
// ID, and size, time and concurrency limits; and in memory, with latency,
// loss and partitions, for tests and simulation.
//
// It knows nothing of Kademlia or mail and must not import kademlia,
// blockstore, mailbuilder, node, testnet or cmd.
package transport
