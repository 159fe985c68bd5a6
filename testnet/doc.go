// Package testnet starts whole flowmail networks on one machine: N real
// nodes on 127.0.0.1 (QUIC, Badger) for `flowmail testnet` and end-to-end
// tests, with nodes that can be stopped and restarted (churn), clients,
// and users that send and fetch mail. Every node, client and store of a
// network shares one clock (Config.Clock), so a test that advances a
// clock.Offset makes time pass for the whole network at once.
//
// It may import node and every library package; it must not import cmd.
package testnet
