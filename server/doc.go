// Package server owns a domain's server (docs/PROTOCOL.md section 18):
// a full node (package node) and, on a second QUIC listener with the
// node's key, the account service that lets users log in with a password
// from any device (package account does the cryptography; this package
// the messages, sessions, rate limits and storage). Client is the device
// side of the same messages.
//
// The always-on mailbox and the SMTP gateway of the same section are not
// built yet.
//
// It must not import testnet or cmd.
package server
