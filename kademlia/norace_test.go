//go:build !race

package kademlia_test

// raceEnabled: see race_test.go.
const raceEnabled = false
