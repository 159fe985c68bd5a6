// Package node is a running flowmail node: identity, block store,
// transport and Kademlia glued together, with the admin endpoint
// (metrics, status) and the mainline rendezvous.
//
// Goroutines: each component owns and joins its own. The block store
// runs its writer and its expiry and garbage-collection loop, the QUIC
// transport its accept and serving goroutines, the rendezvous its
// rounds; each stops them in its Close. The node owns only its own
// loops (refresh, republish, liveness, pubkey upkeep, saving contacts,
// joining peers the rendezvous finds) and the admin server, and Close
// stops those first, then closes the components in the reverse order of
// their start. internal/archtest lists every place that starts a
// goroutine, with its owner.
//
// Time: Config.Clock is the node's one clock. The node hands the same
// clock to its DHT and its store, and its loops read the time and make
// their timers through it.
//
// Config.WithDefaults is the one place defaults are applied and a
// Config is checked. Errors are typed (errors.go) and say what went
// wrong in the node's terms; naming a flag or a setting is for the
// program that configured the node.
//
// It may import every library package; it must not import testnet or cmd.
package node
