// Package mailbuilder turns a mail into blocks and blocks back into a
// mail (docs/PROTOCOL.md section 9): compose RFC 5322/MIME, sign the
// envelope, compress, encrypt, pad, erasure-code into data blocks, seal
// and grind one index block per recipient; and the exact inverse, with
// every check a recipient must make. Randomness and time are parameters.
//
// It may import block, identity and pow; it reaches the network only
// through the small interface it declares, and must not import transport,
// kademlia, blockstore, node, testnet or cmd.
package mailbuilder
