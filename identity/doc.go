// Package identity owns a flowmail identity: its Ed25519 signing key, its
// HPKE (MLKEM768X25519, HKDF-SHA256, ChaCha20-Poly1305) encryption key, the
// self-signed pubkey block whose ID is the identity's address, the address
// text form, and the passphrase-protected key file.
//
// It imports only package block and the standard library (plus x/crypto for
// scrypt); it knows nothing of storage, the network or mail.
package identity
