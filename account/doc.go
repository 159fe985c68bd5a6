// Package account owns password login for a domain's users
// (docs/PROTOCOL.md section 18): the password-authenticated key exchange
// (OPAQUE, RFC 9807, through github.com/bytemare/opaque behind the PAKE
// interface so it can be replaced) run on a secret stretched from the
// password (an OPRF under the server's key, then Argon2id with the
// account's parameters, checked against bounds), the identity key sealed under a key
// derived from OPAQUE's export key, and the account record a server
// stores.
//
// The server side never sees the password or the identity key: it keeps
// an OPAQUE registration record (which, without the server's OPRF seed,
// allows no offline guess) and the sealed identity.
//
// It does no I/O and reads no clock: deadlines and storage belong to
// package server. Of flowmail it imports nothing; it must not import
// transport, kademlia, node, server or cmd.
package account
