// Package mailbox keeps a recipient's mail on disk: the Maildir that mail
// is delivered into (one file per mail, by the Maildir protocol) and the
// processed set, the State of every index block a recipient has listed
// and what became of it.
//
// Files. Mail is delivered into new/ inside the Maildir directory, one
// file per mail holding exactly the RFC 5322 bytes the sender signed,
// named "<unix>.M<micros>P<pid>R<16 hex random>.<host>". The processed
// set is StateFile in the state directory: JSON
//
//	{"version": 1, "last_list": <unix seconds, 0 = never>,
//	 "entries": [{"id": "<64 hex>", "seen": <unix>, "outcome":
//	   "delivered"|"rejected"|"not-for-me"|"deferred"|"missing",
//	   "reason": "...", "attempts": n, "message": "..."}]}
//
// sorted by id, rewritten atomically, guarded by an flock on
// StateFile+".lock". Entries are dropped RememberFor after they were
// first seen.
//
// It may import block, mail and internal/atomicfile. It knows nothing of
// the network, and must not import delivery (which builds on it),
// transport, kademlia, blockstore, node, testnet or cmd.
package mailbox
