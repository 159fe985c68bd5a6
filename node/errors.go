package node

import (
	"errors"

	"github.com/flowmail/flowmail/kademlia"
)

// Errors of Start, Config.WithDefaults and FetchStatus, wrapped with
// detail. They say what went wrong in the node's terms; the program that
// configured the node (cmd/flowmail) knows which of its settings to name.
var (
	// ErrInvalidConfig: a Config field is out of range or unparsable.
	ErrInvalidConfig = errors.New("node: invalid configuration")
	// ErrStoreLocked: another process holds the block store of the data
	// directory (another node on the same directory).
	ErrStoreLocked = errors.New("node: the data directory's block store is in use by another process")
	// ErrListenInUse: another socket has the UDP address to listen on.
	ErrListenInUse = errors.New("node: the listen address is in use")
	// ErrAdminInUse: another socket has the admin TCP address.
	ErrAdminInUse = errors.New("node: the admin address is in use")
	// ErrNoPeers: a client node found nobody to join through.
	ErrNoPeers = errors.New("node: no peers to join")
	// ErrJoin: a client node could not join through the peers it had.
	ErrJoin = errors.New("node: joining the network failed")
	// ErrMainline: the BitTorrent mainline DHT rendezvous did not start.
	ErrMainline = errors.New("node: the mainline DHT rendezvous did not start")
	// ErrNoAdmin: nothing answers at an admin address (FetchStatus).
	ErrNoAdmin = errors.New("node: no node answers at the admin address")
	// ErrBadContact: a peer is not written IP:port or ID@IP:port
	// (ParseContact).
	ErrBadContact = errors.New("node: not a peer address (IP:port or NODEID@IP:port)")
	// ErrBootstrapFile: a bootstrap list that is no list (too large,
	// too many peers, none).
	ErrBootstrapFile = errors.New("node: not a bootstrap list")
	// ErrOnionRefused: a relay refused an onion packet (outbid, over its
	// source's share, or malformed).
	ErrOnionRefused = errors.New("node: the relay refused the onion packet")
	// ErrNoRelays: the routing table holds too few relays for an onion
	// path (Hops in distinct address groups, away from the target).
	ErrNoRelays = errors.New("node: not enough relays known for an onion path")
	// ErrOnionTimeout: no answer came back through the reply path in
	// time, on every path tried.
	ErrOnionTimeout = errors.New("node: no answer through the onion paths")
	// ErrNotFound: no node holds the block (Get).
	ErrNotFound = kademlia.ErrNotFound
)
