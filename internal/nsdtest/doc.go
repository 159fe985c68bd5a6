// Package nsdtest starts NLnet Labs' nsd, a real authoritative DNS
// server, for tests: on a loopback port, with a zone file the test
// writes, stopped with the test. Only tests import it; it imports no
// flowmail package. .ci/run installs nsd (Debian package nsd); a test
// skips, saying so, only when it is not installed.
package nsdtest
