// Package naming owns human addresses (docs/PROTOCOL.md section 19): the
// TXT record a domain publishes at _flowmail.<domain> (its keys, and
// optionally its server), DNS lookups of it through miekg/dns with a
// bounded wait and the DNSSEC AD bit recorded, the resolution of
// local@domain to an address (DNS, then the name certificate from the
// DHT, then the bound address's key log), and pinning: what a client
// decides when a name's address or its domain's keys change.
//
// Name certificates themselves (record kind 3) are package record's;
// the DHT is reached through the small DHT interface the caller provides.
// Pinning is pure logic over values (Decide): no I/O, no clock.
//
// Republisher keeps a domain owner's certificates alive in the DHT
// (19.6), through the small Publisher interface, on an injected clock.
//
// It imports block, identity, record and internal/clock of flowmail; never transport,
// kademlia, blockstore, delivery, node or cmd.
package naming
