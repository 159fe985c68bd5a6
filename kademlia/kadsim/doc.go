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
// The simulations and their commands (medians and seeds in
// /work/notes and the README's figures):
//
//	go test ./kademlia -run '^TestSimulation$' -v                      # 2,000 nodes
//	FLOWMAIL_LONG=1 go test ./kademlia -run '^TestSimulation$' -v      # 10,000
//	FLOWMAIL_SIMNODES=100000 go test ./kademlia -run '^TestSimulation$' -v -timeout 2h
//	go test ./kademlia -run TestAdversarialSimulation -v               # 1,000, a fifth lying
//	FLOWMAIL_LONG=1 go test ./kademlia -run TestAdversarialSimulation -v -timeout 2h
//
// A simulated node costs about 28 KB (routing table ~9 KB, its public
// key's parsed ML-KEM key ~7 KB in the transport, the rest goroutines
// and stores): 100,000 nodes fit in a few GB.
//
// It is test support: it may import kademlia, transport, blockstore,
// identity, block and internal/clock, and the testing package; nothing
// but tests may import it.
package kadsim
