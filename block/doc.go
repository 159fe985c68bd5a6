// Package block owns the bytes every flowmail node agrees on: block IDs,
// the block header, the data and index block layouts, the labelled hashes
// and the protocol limits (docs/PROTOCOL.md, sections 3 to 6 and 11).
//
// It is pure: no I/O, no clock, no randomness. SumMany computes many IDs
// at once in SIMD lanes (its kernels live in internal/sha512x). It must
// not import any other flowmail package but that kernel and the SHA-512
// compression function it is tested against (internal/sha512block), both
// leaves (deps_test.go); everything else imports it.
package block
