// Package testnet starts whole flowmail networks on one machine: N real
// nodes on 127.0.0.1 (QUIC, Badger) for `flowmail testnet` and end-to-end
// tests, and scenario helpers (churn, partitions) for tests.
//
// It may import node and every library package; it must not import cmd.
package testnet
