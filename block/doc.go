// Package block owns the bytes every flowmail node agrees on: block IDs,
// the block header, the data and index block layouts, the labelled hashes
// and the protocol limits (docs/PROTOCOL.md, sections 3 to 6 and 11).
//
// It is pure: no I/O, no clock, no randomness. It must not import any other
// flowmail package; everything else imports it.
package block
