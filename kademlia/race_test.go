//go:build race

package kademlia_test

// raceEnabled: the race detector slows simulations tenfold, so the
// default suite runs smaller ones under it.
const raceEnabled = true
