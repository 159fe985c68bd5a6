// Package mailbuilder turns a mail into blocks and blocks back into a
// mail (docs/PROTOCOL.md section 9): compose RFC 5322/MIME, sign the
// envelope, compress, encrypt, pad, erasure-code into data blocks, seal
// and grind one index block per recipient; and the exact inverse, with
// every check a recipient must make. Randomness and time are parameters.
//
// Sending:
//
//	msg, _ := mailbuilder.Compose(&mailbuilder.Message{...}, rand.Reader)
//	built, _ := codec.Build(ctx, mailbuilder.BuildInput{Sender, Recipients, msg, now, nil, 0}, opts)
//	defer built.Release()
//	err := mailbuilder.Send(ctx, network, built, sendOpts)
//
// Fetching:
//
//	st, _ := mailbuilder.OpenState(dir) // locked until st.Close
//	report, err := codec.Fetch(ctx, network, me, st, mailbuilder.FetchOptions{Maildir, Now: time.Now()})
//
// A Codec keeps the zstd coders, the Reed-Solomon coders and the coding
// buffers from one mail to the next.
//
// Files. Mail is delivered into a Maildir (new/ inside the given
// directory) by the Maildir protocol, one file per mail holding exactly
// the RFC 5322 bytes the sender signed, named
// "<unix>.M<micros>P<pid>R<16 hex random>.<host>". The processed set is
// StateFile in the state directory: JSON
//
//	{"version": 1, "last_list": <unix seconds, 0 = never>,
//	 "entries": [{"id": "<64 hex>", "seen": <unix>, "outcome":
//	   "delivered"|"rejected"|"not-for-me"|"deferred", "reason": "..."}]}
//
// sorted by id, rewritten atomically, guarded by an flock on
// StateFile+".lock". Entries are dropped once their block cannot exist
// any more and a replay would be refused as stale.
//
// It may import block, identity, pow and internal/atomicfile; it reaches the network only
// through the small interface it declares, and must not import transport,
// kademlia, blockstore, node, testnet or cmd.
package mailbuilder
