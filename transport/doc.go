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
//     ErrOverloaded also when a limit refused the connection (ours or the
//     peer's: see below).
//   - ErrClosed: this transport was closed.
//   - a caller's cancelled context comes back as context.Canceled.
//
// The QUIC transport bounds what each source (an IP group, see Group)
// can hold of a node, so that one host or one /24 cannot lock others out
// (docs/PROTOCOL.md 7.3, 7.4): separate inbound and outbound shares,
// caps per source on connections, on connections before their HELLO and
// on request handlers, eviction of the connection doing least instead of
// refusing a newcomer, a progress deadline on request bytes and frame
// buffers that grow only as bytes arrive. Between two nodes one
// connection survives, by a rule both ends apply alike.
//
// It knows nothing of Kademlia or mail and must not import kademlia,
// blockstore, mail, delivery, mailbox, node, testnet or cmd.
package transport
