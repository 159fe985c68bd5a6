// Package mail is the mail format of docs/PROTOCOL.md section 9, as pure
// transforms: compose an RFC 5322/MIME message, sign the envelope,
// compress, encrypt, pad, erasure-code into data blocks, seal and grind
// one index block per recipient; and the exact inverse, with every check
// a recipient must make. Bytes in, blocks out. Randomness and time are
// parameters, so the same inputs give the same blocks.
//
// Building:
//
//	msg, _ := mail.Compose(&mail.Message{...}, rand.Reader)
//	built, _ := codec.Build(ctx, mail.BuildInput{Sender, Recipients, msg, now, nil, 0}, opts)
//	defer built.Release()
//
// Opening, given the index block and the shards someone fetched:
//
//	man, _ := mail.OpenIndex(me, id, indexBlock)
//	payload, _ := mail.ShardPayload(man, i, shardBlock) // each shard
//	m, _ := codec.OpenBody(me, man, payloads, now)
//
// A Codec keeps the zstd coders, the Reed-Solomon coders and the coding
// buffers from one mail to the next.
//
// It may import block, identity and pow. It does no I/O: no network, no
// files (package delivery moves blocks, package mailbox keeps mail on
// disk), and must not import delivery, mailbox, transport, kademlia,
// blockstore, node, testnet or cmd.
package mail
