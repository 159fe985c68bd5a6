// Package mailbox keeps mail on disk: the Maildir that mail is delivered
// into (one file per mail, by the Maildir protocol, streamed), the
// processed set (the State of every index block a recipient has listed
// and what became of it), and the Outbox of messages being sent.
//
// Files. Mail is delivered into new/ inside the Maildir directory, one
// file per mail holding the RFC 5322 bytes the sender signed with each
// CRLF turned into LF (the local convention every Maildir reader expects),
// written in tmp/ first and named "<unix>.M<micros>P<pid>R<16 hex
// random>.<host>". The Outbox keeps messages on their way out. The
// processed set is StateFile in the state directory: JSON
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
