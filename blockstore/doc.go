// Package blockstore keeps blocks by ID: verify on put, verify on get,
// expiry, deletion by preimage with tombstones, listing index blocks by ID
// prefix, and a byte quota that evicts what lies farthest from the node's
// own ID. Badger holds them on disk; a memory store passes the same suite.
//
// The memory store (NewMemory) starts no goroutine and reads no clock but
// Config.Clock, so simulations run it on a virtual clock. The Badger store
// (OpenBadger) reads on Badger snapshots in parallel and makes every change
// in one writer goroutine that commits all waiting Puts, Deletes and
// sweeps in one synced transaction (group commit): a Put returns once its
// block is on disk, and quota, tombstone and counter decisions never race.
// Its key layout is in badger_layout.go.
//
// Records (block type 4, docs/PROTOCOL.md section 15) are kept at their
// slot, not their ID: one per slot, the newest. Put verifies a record in
// full (record.Parse) unless these very bytes are held there already, and
// record.Supersedes decides whether it replaces the version held; a
// refusal is ErrRefused wrapping the record package's reason (stale,
// forked, revoked), an invalid record ErrInvalid wrapping its own.
//
// Put checks every block in full (layout, signature, ID). The Badger
// store then keeps a 64-bit checksum of the block in its metadata, and
// Get compares it with the bytes it reads: bytes that changed on disk are
// dropped, never served, for the price of XXH64 rather than SHA-512
// (docs/PROTOCOL.md section 5 says what is checked where). A Delete reads
// the metadata only: the deletion hash is kept there. A re-store that
// moves a block's expiry rewrites its metadata, never its bytes, and one
// that would not move it writes nothing. The memory store keeps private
// copies and checks nothing on Get.
//
// Storing is not free (docs/PROTOCOL.md section 5.2): a Put names its
// Source (node ID and IP group keys the caller chooses), and a source
// whose decaying charges passed its budget may no longer make a full
// store evict: its Put is refused with ErrOverBudget (budget.go). The
// Badger store collects value-log garbage once the blocks removed since
// the last collection add up to a value-log file, so disk stays near the
// quota under a flood (badger_writer.go).
//
// It may import block, identity and record; it must not import transport,
// kademlia, mail, delivery, mailbox, node, testnet or cmd.
package blockstore
