// Package rendezvous lets flowmail nodes find each other without a
// hand-typed peer list, through the BitTorrent mainline DHT (BEP 5): a
// node announces its QUIC port under an infohash derived from the
// flowmail network name and looks up the others under the same infohash.
//
// The mainline DHT speaks over its own UDP socket, never the node's QUIC
// socket. Addresses it returns are unauthenticated hints; the QUIC
// handshake decides who a peer is.
//
// The DHT itself is github.com/nictuku/dht, wrapped so that it logs
// through the caller's slog.Logger, keeps no files outside Config.StateDir
// and stops every goroutine on Close. Nothing here runs until Start is
// called: a node with the mainline DHT off simply does not call it.
//
// It may import block; it must not import identity, blockstore, pow,
// transport, kademlia, mail, delivery, mailbox, node, testnet or cmd.
package rendezvous
