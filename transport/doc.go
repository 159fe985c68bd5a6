// Package transport moves framed request/response payloads between
// flowmail nodes: over QUIC (quic-go) with mutual TLS 1.3 on each node's
// Ed25519 key, the pubkey-block handshake that binds a connection to a node
// ID, and size, time and concurrency limits; and in memory, with latency,
// loss and partitions, for tests and simulation.
//
// Both implementations (ListenQUIC, MemNetwork.Listen) report failures
// the same way, so code above them can treat them alike:
//   - ErrUnreachable: nothing came back from the peer (dial failed, peer
//     gone or shut down, request or response lost). When a deadline ended
//     the wait, the error also wraps context.DeadlineExceeded.
//   - ErrWrongPeer, ErrHandshake, ErrWrongNetwork: the handshake refused
//     the peer, or the peer refused us.
//   - ErrOverloaded, ErrRefused, ErrFrameTooLarge: the peer reset the
//     request's stream (codes 0x03, 0x02, 0x01); the connection goes on.
//   - ErrClosed: this transport was closed.
//   - a caller's cancelled context comes back as context.Canceled.
//
// It knows nothing of Kademlia or mail and must not import kademlia,
// blockstore, mail, delivery, mailbox, node, testnet or cmd.
package transport
