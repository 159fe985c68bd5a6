// Package server owns a domain's server (docs/PROTOCOL.md section 18):
// a full node (package node) and, on a second QUIC listener with the
// node's key, the account service that lets users log in with a password
// from any device (package account does the cryptography; this package
// the messages, sessions, rate limits and storage). Client is the device
// side of the same messages.
//
// Held mail (section 21): a Holder collects, for owners whose delegation
// certificate names the server, the index blocks in their neighbourhood
// and the blocks their locators list, keeps them on disk under a quota
// until the owner's signed confirmation, and answers HOLD, HELD_LIST,
// HELD_GET and HELD_CONFIRM on the account listener. FetchHeld is the
// device side. The SMTP gateway is package gateway (section 20), which
// cmd runs beside the server.
//
// It must not import testnet or cmd.
package server
