// Package blockstore keeps blocks by ID: verify on put, verify on get,
// expiry, deletion by preimage with tombstones, listing index blocks by ID
// prefix, and a byte quota that evicts what lies farthest from the node's
// own ID. Badger holds them on disk; a memory store passes the same suite.
//
// It may import block and identity; it must not import transport,
// kademlia, mailbuilder, node, testnet or cmd.
package blockstore
