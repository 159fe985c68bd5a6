// Package node is a running flowmail node: identity, block store,
// transport and Kademlia glued together, with the admin endpoint
// (metrics, status) and the mainline rendezvous.
//
// Goroutines: each component owns and joins its own. The block store
// runs its writer and its expiry and garbage-collection loop, the QUIC
// transport its accept and serving goroutines, the rendezvous its
// rounds; each stops them in its Close. The node owns only its own
// loops (refresh, republish, liveness, pubkey upkeep, saving contacts,
// joining peers the rendezvous finds, the onion relay's loop and the
// packets it hands on and exit requests it runs, each bounded in
// number) and the admin server, and Close
// stops those first, then closes the components in the reverse order of
// their start. internal/archtest lists every place that starts a
// goroutine, with its owner.
//
// Time: Config.Clock is the node's one clock. The node hands the same
// clock to its DHT and its store, and its loops read the time and make
// their timers through it.
//
// Onion routing (docs/PROTOCOL.md section 14): every full node runs an
// onion.Relay unless Config.NoOnionRelay (onion_relay.go): MsgOnion
// requests are dispatched to it before Kademlia sees them, each source
// (transport.DefaultGroup) limited to OnionRate packets per second and
// onion.QueuedPerSource queued packets; held packets fall due by the
// node's clock. Node.Onion gives a client the onion-routed
// delivery.Network (onion_client.go) whose answers arrive as MsgOnion
// over the connection it keeps to its guard.
//
// Config.WithDefaults is the one place defaults are applied and a
// Config is checked. Errors are typed (errors.go) and say what went
// wrong in the node's terms; naming a flag or a setting is for the
// program that configured the node.
//
// It may import every library package; it must not import testnet or cmd.
package node
