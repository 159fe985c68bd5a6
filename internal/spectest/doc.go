// Package spectest holds tests that hold docs/PROTOCOL.md and the code to
// each other: today, that the limits table of section 11 names the values
// the Go constants hold. It has no code of its own, only tests, so its
// tests may import any flowmail package without creating an import arrow;
// nothing imports it and its non-test code imports nothing.
package spectest
