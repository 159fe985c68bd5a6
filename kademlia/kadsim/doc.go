// Package kadsim simulates networks of thousands of kademlia DHTs on the
// in-memory transport, for the tests of kademlia and of packages above
// it. A Net derives every ID, rand and latency from one seed; built
// inside a testing/synctest bubble it runs on the virtual clock, so a
// simulated hour takes the CPU time of its messages and a run replays
// from its seed.
//
// Seed and Size read the knobs every simulation shares: FLOWMAIL_SEED
// (the seed; logged, and printed again when a test fails),
// FLOWMAIL_SIMNODES (the network's size) and FLOWMAIL_LONG=1 (the long
// variants).
//
// It is test support: it may import kademlia, transport, blockstore,
// identity, block and internal/clock, and the testing package; nothing
// but tests may import it.
package kadsim
