// Package grant owns allow-lists (docs/PROTOCOL.md section 17): a
// recipient gives a known sender, or a mailing list's address, a grant;
// the sender then grinds only the public prefix of the recipient's work
// and claims the grant in the sealed manifest, and nobody who lacks the
// grant can tell from the index block whether it was used.
//
// It owns the grant's bytes (17.1: Encode, Parse), issuing (New), the
// MIME part a grant travels in (17.2: Attachment, FromMessage), the
// granter's table of issued grants with withdrawal (17.6), the checks a
// recipient makes on a claim (17.4: Table.Check, CheckSender), the
// grants a sender holds (Held), and the local file both live in.
//
// A mailing list is an identity like any other: subscribers give its
// address a grant, and it sends each post to each subscriber under that
// subscriber's grant (17.7). Nothing here is specific to lists.
//
// It may import block, identity and mail (for the index block a claim
// lives in); it does no network I/O and must not import delivery,
// mailbox, transport, kademlia, blockstore, node, testnet or cmd.
package grant
