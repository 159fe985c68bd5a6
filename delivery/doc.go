// Package delivery moves mail between the network and the mailbox:
// Send stores a built mail's blocks (data blocks first, then the index
// blocks), Fetch lists a recipient's index blocks, fetches and opens each
// mail (package mail makes every check), delivers it into the Maildir and
// remembers it in the processed set (package mailbox), retries what
// failed for now and gives up on what stays lost (spec 9.6).
//
// Sending:
//
//	built, _ := codec.Build(ctx, in, opts)
//	defer built.Release()
//	err := delivery.Send(ctx, net, built, delivery.SendOptions{})
//
// Fetching:
//
//	st, _ := mailbox.OpenState(dir) // locked until st.Close
//	report, err := delivery.Fetch(ctx, net, codec, me, st, delivery.FetchOptions{Maildir, Now: time.Now()})
//
// It reaches the network only through the small Network interface it
// declares. It may import block, identity, mail and mailbox, and must not
// import transport, kademlia, blockstore, node, testnet or cmd.
package delivery
