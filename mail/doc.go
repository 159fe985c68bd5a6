// Package mail is the mail format of docs/PROTOCOL.md section 9, as pure
// transforms: compose an RFC 5322/MIME message, wrap it in an envelope
// signed over the message's hash, compress, cut into groups, encrypt and
// erasure-code each group into data blocks, seal and grind one index
// block per recipient; and the exact inverse, with every check a
// recipient must make. Bytes in, blocks out.
//
// Index blocks carry masked work (spec 6): the sender grinds to the
// recipient's address XOR a mask exported from the HPKE context that
// seals the manifest, so storers see only the first RouteBits bits; under
// a grant claim (BuildInput.Grants, spec 17.3) it grinds those bits only.
// The recipient unmasks (UnmaskIndex) before it opens. Randomness and time are
// parameters, so the same inputs give the same blocks.
//
// Both ways stream: Build reads the message once, in pieces, and hands
// each group's data blocks on as soon as they are coded; OpenBody asks
// for one group's shards at a time and writes the message out as it is
// decoded, verifying the signature at the end. Neither holds more than a
// group (about 22 MB), whatever the size of the mail.
//
// Building:
//
//	msg, _ := mail.Compose(&mail.Message{...}, rand.Reader) // or WriteMessage, streaming
//	built, _ := codec.Build(ctx, mail.BuildInput{Sender, Recipients, Message: r, Size: n, Now: now}, opts)
//	defer built.Release()
//
// Opening, given the index block and a way to get each group's shards:
//
//	man, _ := mail.OpenIndex(me, id, indexBlock)
//	opened, _ := codec.OpenBody(ctx, me, man, shards, out, now) // shards checked with ShardPayload
//
// A Codec keeps the zstd coders, the Reed-Solomon coders and the coding
// buffers from one mail to the next.
//
// It may import block, identity and pow. It does no I/O: no network, no
// files (package delivery moves blocks, package mailbox keeps mail on
// disk), and must not import delivery, mailbox, transport, kademlia,
// blockstore, node, testnet or cmd.
package mail
