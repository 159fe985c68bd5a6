// Package server owns a domain's server (docs/PROTOCOL.md section 18):
// a full node (package node) and, on a second QUIC listener with the
// node's key, the account service that lets users log in with a password
// from any device (package account does the cryptography; this package
// the messages, sessions, rate limits and storage). Client is the device
// side of the same messages.
//
// The SMTP gateway is package gateway (section 20), which cmd runs beside
// the server; the always-on mailbox of section 18 is not built yet.
//
// It must not import testnet or cmd.
package server
