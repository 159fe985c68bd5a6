// Package node is a running flowmail node: identity, block store,
// transport and Kademlia glued together. It is the one package that owns
// long-lived goroutines (republish, refresh, expiry, value-log GC through
// the store), and Close stops every one of them.
//
// It may import every library package; it must not import testnet or cmd.
package node
