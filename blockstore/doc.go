// Package blockstore keeps blocks by ID: verify on put, verify on get,
// expiry, deletion by preimage with tombstones, listing index blocks by ID
// prefix, and a byte quota that evicts what lies farthest from the node's
// own ID. Badger holds them on disk; a memory store passes the same suite.
//
// The memory store (NewMemory) starts no goroutine and reads no clock but
// Config.Now, so simulations run it on a virtual clock. The Badger store
// (OpenBadger) reads on Badger snapshots in parallel and makes every change
// in one writer goroutine that commits all waiting Puts, Deletes and
// sweeps in one synced transaction (group commit): a Put returns once its
// block is on disk, and quota, tombstone and counter decisions never race.
// Its key layout is in badger_layout.go.
//
// The Badger store re-hashes every block it reads before Get returns it,
// so bytes that changed on disk are dropped, never served. Concurrent Gets
// share that work: block.SumMany hashes up to block.Lanes() blocks at
// once in SIMD lanes, and the verifier (verifier.go) batches the blocks
// of Gets already waiting for a hasher, in the callers' goroutines; a Get
// that finds nobody hashing hashes its block at once, alone. The memory
// store keeps private copies and does not re-hash.
//
// It may import block and identity; it must not import transport,
// kademlia, mail, delivery, mailbox, node, testnet or cmd.
package blockstore
