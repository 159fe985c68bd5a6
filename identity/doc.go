// Package identity owns a flowmail identity: its Ed25519 signing key, its
// HPKE (MLKEM768X25519, HKDF-SHA256, ChaCha20-Poly1305) encryption key, the
// self-signed pubkey block whose ID is the identity's address, the address
// text form, and the passphrase-protected key files.
//
// An identity has generations. Generation 0's pubkey block names the
// address and commits to a next key (NextKey, kept in its own file);
// Rotate reveals that key and makes the next generation, same address,
// keeping the old decryption key for GracePeriod. The signed key events
// that tell everyone else are package record's.
//
// It imports only package block and the standard library (plus x/crypto for
// scrypt); it knows nothing of records, storage, the network or mail.
package identity
