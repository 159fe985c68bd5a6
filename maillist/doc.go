// Package maillist owns mailing lists (docs/PROTOCOL.md 17.7): a list is
// an identity of its own whose roster (name and members) lives in a
// local file; a post its members send to the list's address is re-sent
// to every member as a mail of its own, signed by the list, under the
// grant that member gave the list when it holds one (so the list grinds
// only the public prefix of that member's work), with the headers a list
// adds (List-Id, List-Post, List-Unsubscribe) and the poster named.
//
// It owns the roster file (Roster: Parse, Encode, Load, Save), the
// message a list re-sends (Repost) and the re-sending (Relay). Fetching
// the list's mail is delivery's; issuing, holding and checking grants is
// grant's.
//
// It may import block, identity, mail, grant, delivery and
// internal/atomicfile; it must not import transport, kademlia,
// blockstore, node, testnet or cmd.
package maillist
