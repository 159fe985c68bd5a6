// Package delivery moves mail between the network and the mailbox.
// Send builds a mail (package mail) and stores it group by group as it is
// built, then the index blocks, so no recipient finds a mail whose body
// is not all there; with a state file it resumes an interrupted send
// without storing again what is stored (docs/PROTOCOL.md 10.2). Fetch
// lists a recipient's index blocks, fetches and opens each mail one group
// at a time (package mail makes every check), streams it into the
// Maildir and remembers it in the processed set (package mailbox),
// retries what failed for now with the shards it has kept (10.3), and
// gives up on what stays lost (spec 9.6). Index blocks without the full
// work are grant claims (spec 17): checked against FetchOptions.Grants
// after every block with the full work, at most MaxClaimsPerFetch per
// fetch, and deleted whether delivered or refused (grants.go).
//
// Sending:
//
//	sent, err := delivery.Send(ctx, net, codec, mail.BuildInput{..., Message: r, Size: n},
//		delivery.SendOptions{State: statePath})
//
// Fetching:
//
//	st, _ := mailbox.OpenState(dir) // locked until st.Close
//	report, err := delivery.Fetch(ctx, net, codec, me, st, delivery.FetchOptions{Maildir, Now: time.Now()})
//
// It reaches the network only through the small Network interface it
// declares. It may import block, identity, mail, mailbox and
// internal/atomicfile, and must not import transport, kademlia,
// blockstore, node, testnet or cmd.
package delivery
